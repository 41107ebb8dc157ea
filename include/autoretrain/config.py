"""One frozen settings object: thresholds, names and URIs, with their documented defaults.

Precedence, lowest first: the defaults below, the JSON settings file (``autoretrain.json`` at the
project root, or the file named by ``AUTORETRAIN_CONFIG``), environment variables
``AUTORETRAIN_<FIELD>`` (e.g. ``AUTORETRAIN_F1_MIN=0.92``), and per-run overrides such as DAG
Params (:meth:`Settings.with_overrides`). Importing this module reads nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from autoretrain.errors import AutoRetrainError

ENV_PREFIX = "AUTORETRAIN_"
CONFIG_ENV = "AUTORETRAIN_CONFIG"
HOME_ENV = "AUTORETRAIN_HOME"
#: settings that are secrets: never logged, printed or sent to MLflow (besides every name ending in SECRET_SUFFIXES)
SECRET_FIELDS = ("api_token", "feedback_token", "admin_token", "routing_salt", "integrity_key")
#: a setting whose name ends like this is a secret too (``integrity_key``, ``admin_token``, ``routing_salt``...)
SECRET_SUFFIXES = ("_token", "_key", "_secret", "_password", "_salt")
#: what a masked value reads as
MASK = "***"
#: model families (autoretrain.training.families.FAMILIES holds their definitions; a test keeps both in step)
KNOWN_FAMILIES = ("multinomial_nb", "complement_nb", "logreg", "linear_svm", "sgd")
#: paired tests the champion/challenger comparison can require (see autoretrain.promotion.decision)
COMPARISON_TESTS = ("mcnemar", "bootstrap", "both")
#: metrics that selection can rank by (see autoretrain.training.evaluation.compute_metrics)
#: how a challenger that won its comparison (and canary) becomes champion: at once, or after a person approves
PROMOTION_MODES = ("auto", "approve")
RANKABLE_METRICS = ("accuracy", "precision", "recall", "f1", "mcc", "roc_auc", "pr_auc", "ece", "brier", "fpr")


#: the settings a DAG run may set through its Params/conf (when the DAG declares them); every other setting
#: (connections, stores, Slack, serving, secrets, the data-source policy) comes from the worker only
RUN_SETTINGS = frozenset({"families", "cv_folds", "data_uri", "accuracy_min", "f1_min", "ece_max", "min_improvement",
                          "significance_level", "promote", "minimum_samples", "max_duplicate_share", "freshness_days",
                          "drift_consecutive_windows", "canary_minutes", "canary_percent", "promotion_mode",
                          "approval_timeout_hours"})
#: gates a run may only tighten: "raise" (a run may ask for more) or "lower" (a run may allow less)
TIGHTEN_ONLY = {"accuracy_min": "raise", "f1_min": "raise", "min_improvement": "raise", "minimum_samples": "raise",
                "ece_max": "lower", "significance_level": "lower", "max_duplicate_share": "lower"}


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smh]?)")
_EMAIL = re.compile(r"[^@\s,;<>]+@[^@\s,;<>]+")


class SettingsError(AutoRetrainError, ValueError):
    """A settings file, environment variable or override has an unknown key or a bad value."""


class RunOverrideRefused(SettingsError):
    """A DAG run asked for what a run may not do: an undeclared key, a connection setting, a looser gate."""


def project_root() -> Path:
    """The project folder: ``$AUTORETRAIN_HOME`` or the checkout this package lives in."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).resolve()
    return Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Settings:
    """Every tunable of AutoRetrain; see ``autoretrain.json`` for the user-facing copy."""

    # --- names and locations
    model_name: str = "sms-spam"
    data_uri: str = "data/sms_spam_collection/SMSSpamCollection"
    text_column: str = "text"
    label_column: str = "label"
    labels: tuple[str, ...] = ("ham", "spam")
    positive_label: str = "spam"
    tracking_uri: str = ""  # empty: $MLFLOW_TRACKING_URI, else a SQLite store under state_dir
    experiment_name: str = "autoretrain-training"
    state_dir: str = ".autoretrain"
    # where data_uri/feedback_uri may point (autoretrain.data.sources.SourcePolicy): local folders (relative:
    # to the project root; "{state_dir}" is replaced), http(s) hosts ("host" or "host:port") and S3 buckets
    # ("s3://bucket"), tables of the configured database for SQL sources, and the largest source read
    data_allowed_roots: tuple[str, ...] = ("data", "{state_dir}/data")
    data_allowed_hosts: tuple[str, ...] = ()  # empty: no remote source at all
    data_allowed_tables: tuple[str, ...] = ()  # empty: no SQL source at all
    data_max_bytes: int = 20_000_000  # 40x the bundled corpus; a larger source is refused while it streams

    # --- training
    families: tuple[str, ...] = ("complement_nb", "logreg", "linear_svm", "sgd")
    cv_folds: int = 5
    test_size: float = 0.2
    random_seed: int = 42
    target_metric: str = "f1"  # F1 of the positive class (spam)
    tie_break_metric: str = "mcc"
    decision_threshold: float = 0.5
    promote: bool = True

    # --- quality gates for a model to hold an alias
    accuracy_min: float = 0.95
    f1_min: float = 0.90
    ece_max: float = 0.05
    min_improvement: float = 0.005
    significance_level: float = 0.05

    # --- data checks
    minimum_samples: int = 1000
    min_minority_share: float = 0.05
    max_empty_share: float = 0.2
    max_duplicate_share: float = 0.2
    freshness_days: int = 30

    # --- monitoring and rollout
    drift_threshold: float = 0.15
    accuracy_floor: float = 0.93
    canary_percent: int = 10
    retention_days: int = 90
    max_message_chars: int = 5000
    monitoring_experiment: str = "autoretrain-monitoring"  # MLflow experiment of the drift windows
    drift_consecutive_windows: int = 2  # hysteresis: breaching windows in a row before a retrain
    drift_min_window_size: int = 100  # fewer predictions in a window: "insufficient data", not drift

    # --- dataset validation inputs and snapshots (issue 6)
    feedback_uri: str = ""  # labelled feedback (CSV label,text[,timestamp]); empty: none accumulated yet
    artifact_store_uri: str = ""  # snapshots and reports; empty: <state_dir>/artifacts; or s3://bucket/prefix

    # --- alerting (issue 6): Slack through the provider's notifiers; no connection = log + alert table
    database_url: str = ""  # SQLAlchemy URL of AutoRetrain's tables; empty: SQLite under state_dir
    slack_conn_id: str = ""  # Airflow connection (Slack API token): chat.postMessage, channel per severity
    slack_webhook_conn_id: str = ""  # Airflow connection (incoming webhook); its channel is fixed by Slack
    alert_channel_critical: str = "#autoretrain-alerts"  # per severity; "" keeps that severity off Slack
    alert_channel_warning: str = "#autoretrain"
    alert_channel_info: str = "#autoretrain"
    alert_cooldown_minutes: int = 60  # the same alert (dedup key) is not repeated within this time
    # --- e-mail next to Slack (issue 14): the SMTP provider's SmtpNotifier; no recipient = no e-mail
    alert_email_to: tuple[str, ...] = ()  # recipients of every alert of alert_email_severities
    alert_email_severities: tuple[str, ...] = ("info", "warning", "critical")
    alert_email_from: str = ""  # sender address; empty: the SMTP connection's "from_email" extra
    smtp_conn_id: str = "smtp_default"  # Airflow connection of the SMTP server (host, port, login, TLS)
    modelops_url: str = ""  # the Model Ops page (e.g. http://airflow:8080/modelops) linked from alerts; empty: none
    # Airflow Deadline Alerts: "<dag_id>=<duration after the run was queued>" (s, m or h); 0 turns one off
    run_deadlines: tuple[str, ...] = ("training=2h", "retrain_compare_promote=2h", "monitoring=30m",
                                      "dataset_validation=30m", "rollback=15m", "maintenance=1h",
                                      "feedback_trigger=15m")

    # --- serving (issue 3): autoretrain.serving, its prediction log on database_url
    serving_host: str = "127.0.0.1"
    serving_port: int = 8000
    api_token: str = dataclasses.field(default="", repr=False)  # deprecated: fills in feedback_token/admin_token
    routing_mode: str = "full"  # full | shadow | canary | ab; PUT /admin/routing switches it live
    ab_variants: tuple[str, ...] = ("champion=50", "challenger=50")  # ab mode: registry alias=weight
    # secret key of the sticky user hash (a new salt reshuffles users); empty: generated once into
    # <state_dir>/routing-salt; processes that share no state folder must all set the same value
    routing_salt: str = dataclasses.field(default="", repr=False)
    reload_interval_seconds: float = 10.0  # how often aliases and the routing override are polled
    log_queue_size: int = 10_000_000  # rows in the spool not yet in the database; beyond: dropped and counted
    log_batch_size: int = 500  # rows per INSERT of the prediction-log writer
    log_flush_seconds: float = 0.2  # the writer flushes at least this often
    log_spool_max_bytes: int = 1_073_741_824  # spool of unwritten rows (<state_dir>/spool); beyond: dropped, counted
    log_stop_seconds: float = 10.0  # at shutdown, insert spooled rows this long; the rest waits in the spool
    log_ready_backlog_rows: int = 10_000  # more rows than this waiting: /ready "degraded" and a warning alert
    max_batch_messages: int = 256  # messages per POST /predict/batch
    top_features: int = 5  # explaining terms per prediction; 0: none

    # --- retrain-compare-promote (issue 5): comparison, canary rollout (autoretrain.promotion)
    comparison_test: str = "mcnemar"  # mcnemar | bootstrap | both: the paired test(s) that must be significant
    bootstrap_samples: int = 2000  # resamples of the paired bootstrap and of the model card's intervals
    canary_minutes: int = 30  # canary window; 0: promote right after the comparison, without a canary
    canary_grace_seconds: float = 30.0  # start of the window ignored while every process picks the routing up
    canary_poke_seconds: int = 60  # how often the canary is checked during its window
    canary_min_requests: int = 50  # challenger answers needed before the canary can pass
    canary_max_error_rate: float = 0.01  # requests routed to the challenger that it did not answer well
    canary_min_agreement: float = 0.90  # share of challenger answers the champion would have given too
    canary_max_score_shift: float = 0.10  # |spam rate of challenger answers - spam rate of champion answers|
    canary_max_accuracy_drop: float = 0.02  # where feedback exists: champion accuracy - challenger accuracy
    canary_min_labelled: int = 20  # labelled challenger answers needed to judge accuracy

    # --- people in the loop (issue 14): the approval gate, one rollout path, feedback that triggers
    promotion_mode: str = "auto"  # auto: promote after compare (+ canary); approve: a person decides first
    approval_timeout_hours: float = 24.0  # no answer within this: the challenger is withdrawn, an alert goes out
    feedback_retrain_min_labels: int = 200  # new labels since the last feedback event before a retrain starts

    # --- retention (issue 12): the daily `maintenance` DAG / `autoretrain maintenance purge`
    # (prediction-log and feedback rows older than retention_days are purged)
    retention_guard_hours: int = 24  # extra age before a row is purged or redacted (runs retried late)
    purge_batch_size: int = 5000  # rows per DELETE/UPDATE transaction of the purge
    snapshot_keep: int = 10  # newest dataset snapshots kept (and any a registered version was trained on)
    redact_at_rest: bool = False  # store prediction-log texts with e-mails, cards, phones replaced
    redact_after_days: int = 0  # redact stored texts older than this many days; 0: never

    # --- access (issue 12): one bearer token per role (autoretrain.serving.access); empty: that role is off
    feedback_token: str = dataclasses.field(default="", repr=False)  # POST /feedback
    admin_token: str = dataclasses.field(default="", repr=False)  # /admin/*, POST /drift/calculate
    drift_max_messages: int = 10_000  # per POST /drift/calculate; more: 413
    drift_max_concurrent: int = 1  # POST /drift/calculate running at once per process; more: 429

    # ---- model integrity (ADR 0007)
    #: HMAC key of the model_artifacts records; MLflow never sees it. Empty: the record alone is the authority
    integrity_key: str = dataclasses.field(default="", repr=False)

    def __post_init__(self) -> None:
        for name in ("accuracy_min", "f1_min", "ece_max", "drift_threshold", "accuracy_floor",
                     "test_size", "decision_threshold", "significance_level", "min_minority_share",
                     "max_empty_share", "max_duplicate_share", "canary_max_error_rate",
                     "canary_min_agreement", "canary_max_score_shift", "canary_max_accuracy_drop"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SettingsError(f"{name}={value!r} is outside [0, 1]")
        if self.cv_folds < 2:
            raise SettingsError(f"cv_folds={self.cv_folds} must be at least 2")
        if self.comparison_test not in COMPARISON_TESTS:
            raise SettingsError(f"comparison_test={self.comparison_test!r} is not one of {COMPARISON_TESTS}")
        if self.canary_minutes < 0 or self.bootstrap_samples < 100:
            raise SettingsError(f"canary_minutes={self.canary_minutes} must be >= 0 and "
                                f"bootstrap_samples={self.bootstrap_samples} at least 100")
        if not 0 <= self.canary_percent <= 100:
            raise SettingsError(f"canary_percent={self.canary_percent} must be between 0 and 100")
        if self.positive_label not in self.labels:
            raise SettingsError(f"positive_label={self.positive_label!r} is not one of labels={self.labels}")
        unknown = sorted(set(self.families) - set(KNOWN_FAMILIES))
        if unknown:
            raise SettingsError(f"unknown model families {unknown}; known: {list(KNOWN_FAMILIES)}")
        for name in ("target_metric", "tie_break_metric"):
            if getattr(self, name) not in RANKABLE_METRICS:
                raise SettingsError(f"{name}={getattr(self, name)!r} is not one of {RANKABLE_METRICS}")
        if len(self.labels) != 2:
            raise SettingsError(f"labels={self.labels} must name exactly two classes (binary classifier)")
        for name in ("retention_days", "purge_batch_size", "snapshot_keep"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name}={getattr(self, name)} must be at least 1")
        if self.retention_guard_hours < 0 or self.redact_after_days < 0:
            raise SettingsError(f"retention_guard_hours={self.retention_guard_hours} and "
                                f"redact_after_days={self.redact_after_days} must be >= 0")
        if self.promotion_mode not in PROMOTION_MODES:
            raise SettingsError(f"promotion_mode={self.promotion_mode!r} is not one of {PROMOTION_MODES}")
        if not self.approval_timeout_hours > 0 or self.feedback_retrain_min_labels < 1:
            raise SettingsError(f"approval_timeout_hours={self.approval_timeout_hours} must be > 0 and "
                                f"feedback_retrain_min_labels={self.feedback_retrain_min_labels} at least 1")
        if self.data_max_bytes < 1:
            raise SettingsError(f"data_max_bytes={self.data_max_bytes} must be at least 1")
        unknown_severities = sorted(set(self.alert_email_severities) - {"info", "warning", "critical"})
        if unknown_severities:
            raise SettingsError(f"alert_email_severities has {unknown_severities}; known: info, warning, critical")
        bad_addresses = [a for a in self.alert_email_to if not _EMAIL.fullmatch(a)]
        if bad_addresses:
            raise SettingsError(f"alert_email_to has addresses that are not name@domain: {bad_addresses}")
        self.deadlines()  # raises on a malformed entry

    def deadlines(self) -> dict[str, float]:
        """``run_deadlines`` as dag_id -> seconds after the run was queued (entries of 0 left out)."""
        out: dict[str, float] = {}
        for entry in self.run_deadlines:
            dag_id, sep, duration = entry.partition("=")
            match = _DURATION.fullmatch(duration.strip())
            if not sep or not dag_id.strip() or match is None:
                raise SettingsError(f"run_deadlines entry {entry!r} is not <dag_id>=<number><s|m|h> "
                                    "(e.g. monitoring=30m)")
            seconds = float(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2] or "m"]
            if seconds > 0:
                out[dag_id.strip()] = seconds
        return out

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.public().items())
        return f"Settings({shown})"

    # ------------------------------------------------------------------ derived values
    @property
    def negative_label(self) -> str:
        """The label that is not the positive class (``ham`` by default)."""
        return next(label for label in self.labels if label != self.positive_label)

    def resolve_path(self, value: str) -> Path:
        """A path from the settings, relative to the project root unless absolute."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else project_root() / path

    @property
    def state_path(self) -> Path:
        """Folder for local state (embedded MLflow store, caches); git-ignored."""
        return self.resolve_path(self.state_dir)

    def resolved_data_uri(self) -> str:
        """``data_uri`` with a relative local path made absolute against the project root."""
        if "://" in self.data_uri:
            return self.data_uri
        return str(self.resolve_path(self.data_uri))

    def resolved_tracking_uri(self) -> str:
        """The MLflow tracking URI: settings, then ``$MLFLOW_TRACKING_URI``, then local SQLite."""
        if self.tracking_uri:
            return self.tracking_uri
        if os.environ.get("MLFLOW_TRACKING_URI"):
            return os.environ["MLFLOW_TRACKING_URI"]
        return f"sqlite:///{self.state_path / 'mlflow.db'}"

    # ------------------------------------------------------------------ overrides
    def with_overrides(self, overrides: Mapping[str, Any] | None) -> Settings:
        """A copy with the known keys of ``overrides`` applied (unknown keys are ignored).

        Per-run overrides come from DAG Params, which also carry keys that are not settings
        (``reason``, ``dry_run``...); ``None`` values mean "keep the configured value".
        """
        if not overrides:
            return self
        names = _field_names()
        changes = {k: _coerce(k, v) for k, v in overrides.items() if k in names and v is not None}
        return dataclasses.replace(self, **changes) if changes else self

    def for_run(self, overrides: Mapping[str, Any] | None, *, declared: Iterable[str],
                conf: Mapping[str, Any] | None = None) -> Settings:
        """These (the worker's) settings with one DAG run's Params applied, after checking what a run may set.

        ``overrides`` are the run's Params (declared ones, conf merged in), ``declared`` the DAG's Param
        names, ``conf`` the run's conf as triggered. Refused, with one message naming every offender
        (:class:`RunOverrideRefused`): a conf key the DAG does not declare; a setting outside
        :data:`RUN_SETTINGS` (connections, stores, secrets...) even when declared; a gate of
        :data:`TIGHTEN_ONLY` set looser than these settings.
        """
        declared = set(declared)
        problems = []
        undeclared = sorted(set(conf or {}) - declared)
        if undeclared:
            problems.append(f"conf key(s) {undeclared} are not Params of this DAG (declared: {sorted(declared)})")
        names = _field_names()
        given = {k: v for k, v in (overrides or {}).items() if k in names and v is not None}
        fixed = sorted(k for k in given if k not in RUN_SETTINGS)
        if fixed:
            problems.append(f"setting(s) {fixed} come from the worker's configuration only, never from a run")
        for name, way in TIGHTEN_ONLY.items():
            if name in given and name not in fixed:
                value, current = _coerce(name, given[name]), getattr(self, name)
                if (value < current) if way == "raise" else (value > current):
                    bound = "below" if way == "raise" else "above"
                    problems.append(f"{name}={value!r} is {bound} the configured {current!r}: a run may only "
                                    f"{'raise' if way == 'raise' else 'lower'} it (tighten the gate)")
        if given.get("promotion_mode") == "auto" and self.promotion_mode == "approve":
            problems.append("promotion_mode='auto' is refused: the configured mode is 'approve', and a run may only "
                            "add the approval gate, never skip it")
        if problems:
            raise RunOverrideRefused("run refused: " + "; ".join(problems))
        return self.with_overrides(given)

    def public(self) -> dict[str, Any]:
        """The settings as plain JSON-able values, safe to show anywhere (logs, MLflow params, CLI, alerts).

        Secrets (:func:`is_secret`) read ``***`` when set; every URL keeps its scheme, host and path
        but not its password or secret query values (:func:`redact_url`). Every site that shows
        settings goes through this method.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if is_secret(f.name):
                value = MASK if value else value
            elif isinstance(value, str):
                value = redact_url(value)
            elif isinstance(value, tuple):
                value = [redact_url(v) if isinstance(v, str) else v for v in value]
            out[f.name] = value
        return out

    def as_dict(self) -> dict[str, Any]:
        """Same as :meth:`public` (secrets masked); kept for callers of the older name."""
        return self.public()

    def secret_values(self) -> tuple[str, ...]:
        """Every secret string these settings hold: secret fields, URL passwords, secret query values.

        For :func:`scrub` and Airflow's secrets masker. Left out: values shorter than 4 characters
        (masking ``a`` everywhere would garble every log line) and a secret field still at its built-in
        default (public in the source; masking the default salt ``autoretrain`` would hide every name).
        """
        found: set[str] = set()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if is_secret(f.name) and value == f.default:
                continue
            values = value if isinstance(value, tuple) else (value,)
            for item in (v for v in values if isinstance(v, str) and v):
                found.update({item} if is_secret(f.name) else url_secrets(item))
        found.update(url_secrets(self.resolved_tracking_uri()))
        return tuple(sorted((v for v in found if len(v) >= 4), key=len, reverse=True))

    def scrub(self, text: str) -> str:
        """``text`` with every secret of these settings replaced by ``***`` (for free text: errors, alerts)."""
        return scrub(text, self.secret_values())


# ------------------------------------------------------------------------------------ secrets
#: query parameters whose value is a credential (``?password=``, ``?sslpassword=``, ``X-Amz-Signature``...)
_SECRET_QUERY = re.compile(r"pass|pwd|secret|token|key|sig|credential|auth", re.IGNORECASE)
#: ``scheme://user:password@host``; the password may hold any character but ``@`` (as SQLAlchemy parses it)
_USERINFO = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@]*):(?P<password>[^@?#]*)@")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
_QUERY_PAIR = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&;#]+)=(?P<value>[^&;#]*)")


def is_secret(name: str) -> bool:
    """True for a setting that holds a credential: :data:`SECRET_FIELDS` and names ending in :data:`SECRET_SUFFIXES`."""
    return name in SECRET_FIELDS or name.endswith(SECRET_SUFFIXES)


def _password(value: str) -> str | None:
    match = _USERINFO.match(value)
    if match is None or re.fullmatch(r"\d*(/.*)?", match["password"]):  # host:port/path@x is not a password
        return None
    return match["password"]


def url_secrets(value: str) -> set[str]:
    """The password and the secret query values of a URL (empty for anything else)."""
    if "://" not in value:
        return set()
    found = set()
    password = _password(value)
    if password:
        found |= {password, unquote(password)}
    for pair in _QUERY_PAIR.finditer(value):
        if _SECRET_QUERY.search(pair["name"]) and pair["value"]:
            found |= {pair["value"], unquote(pair["value"])}
    return found


def redact_url(value: str) -> str:
    """A URL with its password and secret query values replaced by ``***``; scheme, user, host and path stay.

    ``postgresql://app:s3cret@db:5432/autoretrain`` -> ``postgresql://app:***@db:5432/autoretrain``.
    Anything that is not a URL comes back unchanged.
    """
    if "://" not in value:
        return value
    if _password(value):
        value = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", value, count=1)

    def mask(pair: re.Match[str]) -> str:
        secret = _SECRET_QUERY.search(pair["name"]) and pair["value"]
        return f"{pair['sep']}{pair['name']}={MASK if secret else pair['value']}"

    return _QUERY_PAIR.sub(mask, value)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every URL redacted (:func:`redact_url`) and each of ``secrets`` replaced by ``***``."""
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), str(text))
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text


def load_settings(path: str | os.PathLike[str] | None = None, *,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from defaults, the JSON file and ``AUTORETRAIN_*`` variables."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    file_path = Path(path) if path else _default_file(environ)
    if file_path is not None:
        values.update(_read_file(file_path))
    names = _field_names()
    for key, raw in environ.items():
        if key.startswith(ENV_PREFIX) and key not in (CONFIG_ENV, HOME_ENV):
            name = key[len(ENV_PREFIX):].lower()
            if name in names:
                values[name] = _coerce(name, raw, source=key)
    return Settings(**values)


def _default_file(environ: Mapping[str, str]) -> Path | None:
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    candidate = project_root() / "autoretrain.json"
    return candidate if candidate.is_file() else None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise SettingsError(f"settings file {path} does not exist (check {CONFIG_ENV})") from err
    except json.JSONDecodeError as err:
        raise SettingsError(f"settings file {path} is not valid JSON: {err}") from err
    if not isinstance(raw, dict):
        raise SettingsError(f"settings file {path} must hold a JSON object, found {type(raw).__name__}")
    raw = {k: v for k, v in raw.items() if not k.startswith("_")}  # "_comment" keys are notes
    names = _field_names()
    unknown = sorted(set(raw) - names)
    if unknown:
        raise SettingsError(f"settings file {path}: unknown keys {unknown}; known keys: {sorted(names)}")
    return {k: _coerce(k, v, source=str(path)) for k, v in raw.items()}


def _field_names() -> set[str]:
    return {f.name for f in dataclasses.fields(Settings)}


def _coerce(name: str, value: Any, *, source: str = "override") -> Any:
    """Convert ``value`` (a string from the environment, or JSON) to the field's declared type."""
    hint = typing.get_type_hints(Settings)[name]
    try:
        return _convert(hint, value)
    except (TypeError, ValueError) as err:
        raise SettingsError(f"{source}: {name}={value!r} is not a valid {hint}: {err}") from err


def _convert(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is tuple:
        if isinstance(value, str):
            value = json.loads(value) if value.strip().startswith("[") else value.split(",")
        if not isinstance(value, list | tuple):
            raise TypeError("expected a list")
        return tuple(str(v).strip() for v in value if str(v).strip())
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return None if value in (None, "") else _convert(inner[0], value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).strip().lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true/false")
    if hint is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("expected an integer")
        return int(value)
    if hint is float:
        return float(value)
    if hint is str:
        return str(value)
    raise TypeError(f"unsupported settings type {hint}")
