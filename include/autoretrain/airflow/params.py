"""Every DAG's Params (the typed trigger forms), in one place.

A Param that overrides a setting defaults to ``None``: left empty, the run uses the worker's
settings (``autoretrain.json`` < ``AUTORETRAIN_*`` environment), so a scheduled run never carries
the DAG processor's configuration. Its description names the setting and its built-in default.
Params that are not settings (a reason, a dry run) have ordinary defaults. Only settings of
:data:`autoretrain.config.RUN_SETTINGS` may be Params (connections such as ``feedback_uri`` or
``database_url`` never come from a run), and gates only tighten (``Settings.for_run``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from airflow.sdk import Param

from autoretrain.config import KNOWN_FAMILIES, Settings

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Settings)}
_FAMILIES = {"type": "string", "enum": list(KNOWN_FAMILIES)}


def setting_param(name: str, json_type: str, *, title: str, description: str = "", **schema: Any) -> Param:
    """A Param that overrides setting ``name`` for one run; empty (``None``) keeps the worker's value."""
    default = _DEFAULTS[name]
    shown = ",".join(default) if isinstance(default, tuple) else default
    note = f"Empty: the worker's setting `{name}` (built-in default: {shown})."
    return Param(None, type=["null", json_type], title=title,
                 description=f"{description} {note}".strip(), **schema)


def training_params() -> dict[str, Param]:
    """The training form: families, CV folds, data source, gate thresholds, whether to assign an alias."""
    return {
        "families": setting_param("families", "array", items=_FAMILIES, examples=list(KNOWN_FAMILIES),
                                  title="Model families",
                                  description="scikit-learn families to search; the best by CV F1 is registered."),
        "cv_folds": setting_param("cv_folds", "integer", minimum=2, maximum=10, title="CV folds",
                                  description="Stratified cross-validation folds of the search."),
        "data_uri": setting_param("data_uri", "string", minLength=1, title="Data source",
                                  description="Path, file://, http(s)://, s3://bucket/key, or a SQLAlchemy URL#table."),
        "accuracy_min": setting_param("accuracy_min", "number", minimum=0, maximum=1,
                                      title="Minimum hold-out accuracy"),
        "f1_min": setting_param("f1_min", "number", minimum=0, maximum=1, title="Minimum hold-out F1 (positive class)"),
        "ece_max": setting_param("ece_max", "number", minimum=0, maximum=1,
                                 title="Maximum expected calibration error"),
        "promote": setting_param("promote", "boolean", title="Assign an alias",
                                 description="champion when there is none, else challenger; off: register only."),
    }


def validation_params() -> dict[str, Param]:
    """The dataset-validation form: which data, and the limits of the size and freshness checks."""
    return {
        "data_uri": setting_param("data_uri", "string", minLength=1, title="Data source",
                                  description="Path, file://, http(s)://, s3://bucket/key, or a SQLAlchemy URL#table."),
        "minimum_samples": setting_param("minimum_samples", "integer", minimum=1, title="Minimum rows",
                                         description="Fewer rows fail the dataset (blocking)."),
        "max_duplicate_share": setting_param("max_duplicate_share", "number", minimum=0, maximum=1,
                                             title="Maximum duplicate share", description="Blocking above this."),
        "freshness_days": setting_param("freshness_days", "integer", minimum=1, title="Freshness (days)",
                                        description="Newest feedback or new snapshot older than this: a warning."),
    }


def monitoring_params() -> dict[str, Param]:
    """The monitoring form: an ad-hoc window, and the hysteresis for one run."""
    return {
        "window_end": Param(None, type=["null", "string"], format="date-time", title="Window end",
                            description="Measure the window ending here instead of the data interval (ISO, UTC)."),
        "window_hours": Param(6, type="number", minimum=0.01, title="Window length (hours)",
                              description="Used with Window end."),
        "drift_consecutive_windows": setting_param("drift_consecutive_windows", "integer", minimum=1,
                                                   title="Breaching windows in a row before a retrain"),
    }


def retrain_params() -> dict[str, Param]:
    """The form of ``retrain_compare_promote`` (the monitoring DAG fills ``drift_reasons`` and its run id)."""
    return {
        "reason": Param("manual retrain", type="string", minLength=1, title="Reason",
                        description="Why this run: recorded with every alias move and in the alerts. "
                                    "The monitoring DAG puts its drift reasons here."),
        "families": setting_param("families", "array", items=_FAMILIES, examples=list(KNOWN_FAMILIES),
                                  title="Model families",
                                  description="Families the challenger is searched over (best CV F1 wins)."),
        "cv_folds": setting_param("cv_folds", "integer", minimum=2, maximum=10, title="CV folds"),
        "force": Param(False, type="boolean", title="Force",
                       description="Waive only the min_improvement margin: a challenger that passes every "
                                   "gate and is significantly better than the champion (McNemar / bootstrap at "
                                   "significance_level) is promoted even if its gain is below min_improvement. "
                                   "Gates and the significance test always apply; nothing else is skipped."),
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Train, register and compare; move no alias and touch no routing."),
        "canary_minutes": setting_param("canary_minutes", "integer", minimum=0, title="Canary minutes",
                                        description="Canary window on live traffic; 0 promotes right after the "
                                                    "comparison (no prediction service needed)."),
        "canary_percent": setting_param("canary_percent", "integer", minimum=1, maximum=100, title="Canary percent",
                                        description="Share of users the challenger answers."),
        "promotion_mode": setting_param("promotion_mode", "string", enum=[None, "auto", "approve"],
                                        title="Promotion mode",
                                        description="approve: a person approves (Browse -> Required Actions) "
                                                    "before the champion moves; a run may add the gate, never "
                                                    "drop it."),
        "approval_timeout_hours": setting_param("approval_timeout_hours", "number", exclusiveMinimum=0,
                                                title="Approval timeout (hours)",
                                                description="No answer within this withdraws the challenger."),
        "version": Param(None, type=["null", "string"], pattern="^[0-9]+$", title="Version to roll out",
                         description="A registered version to compare and roll out instead of training one (the "
                                     "weekly training and `autoretrain train` hand their versions over here)."),
        "drift_reasons": Param(None, type=["null", "object", "array"], title="Drift details",
                               description="Set by the monitoring DAG: the drift decision that triggered this run."),
        "monitoring_run_id": Param(None, type=["null", "string"], title="Monitoring run",
                                   description="Set by the monitoring DAG: the run whose window triggered this one."),
    }


def rollback_params() -> dict[str, Param]:
    """The form of the ``rollback`` DAG."""
    return {
        "reason": Param("rollback requested by an operator", type="string", minLength=1, title="Reason",
                        description="Recorded with the alias move and sent in the alert."),
        "to_version": Param(None, type=["null", "string"], pattern="^[0-9]+$", title="Version",
                            description="Version to restore; empty: the recorded previous champion."),
    }


def maintenance_params() -> dict[str, Param]:
    """The form of the ``maintenance`` DAG: only a dry run (what is purged follows the worker's settings)."""
    return {
        "dry_run": Param(False, type="boolean", title="Dry run",
                         description="Count what would be purged, redacted and deleted; change nothing."),
    }
