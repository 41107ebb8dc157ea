"""Typed Params (the manual-trigger form) built from the configured settings."""

from __future__ import annotations

from airflow.sdk import Param

from autoretrain.config import KNOWN_FAMILIES, Settings


def training_params(settings: Settings) -> dict[str, Param]:
    """The training form: families, CV folds, data source, gate thresholds, whether to promote."""
    return {
        "families": Param(list(settings.families), type="array",
                          items={"type": "string", "enum": list(KNOWN_FAMILIES)},
                          examples=list(KNOWN_FAMILIES), title="Model families",
                          description="scikit-learn families to search; the best by CV F1 is registered."),
        "cv_folds": Param(settings.cv_folds, type="integer", minimum=2, maximum=10,
                          title="CV folds", description="Stratified cross-validation folds of the search."),
        "data_uri": Param(settings.data_uri, type="string", minLength=1, title="Data source",
                          description="Path, file://, http(s)://, s3://bucket/key, or a SQLAlchemy URL#table."),
        "accuracy_min": Param(settings.accuracy_min, type="number", minimum=0, maximum=1,
                              title="Minimum hold-out accuracy"),
        "f1_min": Param(settings.f1_min, type="number", minimum=0, maximum=1,
                        title="Minimum hold-out F1 (positive class)"),
        "ece_max": Param(settings.ece_max, type="number", minimum=0, maximum=1,
                         title="Maximum expected calibration error"),
        "promote": Param(settings.promote, type="boolean", title="Assign an alias",
                         description="champion when there is none, else challenger; off: register only."),
    }


def validation_params(settings: Settings) -> dict[str, Param]:
    """The dataset-validation form: which data, and the limits of the size and freshness checks."""
    return {
        "data_uri": Param(settings.data_uri, type="string", minLength=1, title="Data source",
                          description="Path, file://, http(s)://, s3://bucket/key, or a SQLAlchemy URL#table."),
        "feedback_uri": Param(settings.feedback_uri, type="string", title="Feedback source",
                              description="CSV label,text[,timestamp] of accumulated feedback; empty: none."),
        "minimum_samples": Param(settings.minimum_samples, type="integer", minimum=1,
                                 title="Minimum rows", description="Fewer rows fail the dataset (blocking)."),
        "max_duplicate_share": Param(settings.max_duplicate_share, type="number", minimum=0, maximum=1,
                                     title="Maximum duplicate share", description="Blocking above this."),
        "freshness_days": Param(settings.freshness_days, type="integer", minimum=1, title="Freshness (days)",
                                description="Newest feedback or new snapshot older than this: a warning."),
    }
