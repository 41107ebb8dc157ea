"""Settings: defaults, the JSON file, AUTORETRAIN_* variables, per-run overrides and validation."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from autoretrain import config
from autoretrain.config import Settings, SettingsError, load_settings
from autoretrain.training import families as models


def _write(path: Path, payload: object) -> Path:
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


@pytest.fixture
def empty_file(tmp_path: Path) -> Path:
    """A settings file with no keys, so tests do not depend on the project's autoretrain.json."""
    return _write(tmp_path / "settings.json", {})


# ------------------------------------------------------------------------------------ defaults
def test_defaults() -> None:
    s = Settings()
    assert s.model_name == "sms-spam"
    assert s.labels == ("ham", "spam")
    assert s.positive_label == "spam"
    assert s.negative_label == "ham"
    assert s.families == ("complement_nb", "logreg", "linear_svm", "sgd")
    assert s.cv_folds == 5
    assert s.test_size == 0.2
    assert s.random_seed == 42
    assert (s.target_metric, s.tie_break_metric) == ("f1", "mcc")
    assert (s.accuracy_min, s.f1_min, s.ece_max) == (0.95, 0.90, 0.05)
    assert s.promote is True
    assert s.tracking_uri == ""


def test_load_settings_with_empty_file_and_environment_gives_defaults(empty_file: Path) -> None:
    assert load_settings(empty_file, environ={}) == Settings()


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().f1_min = 0.5  # type: ignore[misc]


def test_as_dict_is_json_able_with_lists_for_tuples() -> None:
    d = Settings().as_dict()
    assert d["families"] == ["complement_nb", "logreg", "linear_svm", "sgd"]
    assert d["labels"] == ["ham", "spam"]
    assert json.loads(json.dumps(d)) == d


def test_known_families_match_model_definitions() -> None:
    assert set(config.KNOWN_FAMILIES) == set(models.FAMILIES)
    assert len(config.KNOWN_FAMILIES) == len(set(config.KNOWN_FAMILIES))


# ------------------------------------------------------------------------------------ JSON file
def test_json_file_values_are_loaded_and_comments_ignored(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.json", {"_comment": "notes", "_another_note": 1, "f1_min": 0.8,
                                        "families": ["logreg"], "cv_folds": 3, "promote": False})
    s = load_settings(path, environ={})
    assert s.f1_min == 0.8
    assert s.families == ("logreg",)
    assert s.cv_folds == 3
    assert s.promote is False
    assert s.accuracy_min == 0.95  # untouched keys keep their defaults


def test_json_file_named_by_autoretrain_config(tmp_path: Path) -> None:
    path = _write(tmp_path / "elsewhere.json", {"model_name": "from-env-file"})
    assert load_settings(environ={"AUTORETRAIN_CONFIG": str(path)}).model_name == "from-env-file"


def test_json_unknown_key_names_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.json", {"f1_minimum": 0.9})
    with pytest.raises(SettingsError, match=r"unknown keys \['f1_minimum'\]") as info:
        load_settings(path, environ={})
    assert str(path) in str(info.value)


def test_json_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.json", environ={})


def test_json_invalid(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text('{"f1_min": 0.9,', encoding="utf-8")
    with pytest.raises(SettingsError, match="is not valid JSON"):
        load_settings(path, environ={})


def test_json_must_be_an_object(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.json", ["f1_min"])
    with pytest.raises(SettingsError, match="must hold a JSON object, found list"):
        load_settings(path, environ={})


def test_json_wrong_type_names_key_value_and_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.json", {"cv_folds": "many"})
    with pytest.raises(SettingsError, match=r"cv_folds='many' is not a valid") as info:
        load_settings(path, environ={})
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------- environment
def test_env_overrides_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.json", {"f1_min": 0.8})
    s = load_settings(path, environ={"AUTORETRAIN_F1_MIN": "0.92"})
    assert s.f1_min == 0.92


@pytest.mark.parametrize("raw", ["logreg,sgd", " logreg , sgd ,", '["logreg", "sgd"]', 'logreg,,sgd'])
def test_env_families_comma_and_json_list(raw: str, empty_file: Path) -> None:
    assert load_settings(empty_file, environ={"AUTORETRAIN_FAMILIES": raw}).families == ("logreg", "sgd")


@pytest.mark.parametrize(("raw", "expected"), [
    ("true", True), ("1", True), ("yes", True), ("ON", True), (" True ", True),
    ("false", False), ("0", False), ("no", False), ("off", False), ("FALSE", False),
])
def test_env_bool(raw: str, expected: bool, empty_file: Path) -> None:
    assert load_settings(empty_file, environ={"AUTORETRAIN_PROMOTE": raw}).promote is expected


def test_env_bad_bool_names_variable_and_value(empty_file: Path) -> None:
    with pytest.raises(SettingsError, match=r"AUTORETRAIN_PROMOTE: promote='maybe'"):
        load_settings(empty_file, environ={"AUTORETRAIN_PROMOTE": "maybe"})


def test_env_int_and_float(empty_file: Path) -> None:
    s = load_settings(empty_file, environ={"AUTORETRAIN_CV_FOLDS": "3", "AUTORETRAIN_TEST_SIZE": "0.25"})
    assert s.cv_folds == 3
    assert s.test_size == 0.25


def test_env_bad_number_names_variable(empty_file: Path) -> None:
    with pytest.raises(SettingsError, match=r"AUTORETRAIN_F1_MIN: f1_min='high'"):
        load_settings(empty_file, environ={"AUTORETRAIN_F1_MIN": "high"})


def test_env_ignores_unrelated_and_unknown_variables(empty_file: Path) -> None:
    environ = {"AUTORETRAIN_HOME": "/nowhere", "AUTORETRAIN_TEST_PGHOST": "db", "PATH": "/bin",
               "F1_MIN": "0.1"}
    assert load_settings(empty_file, environ=environ) == Settings()


def test_env_from_process_environment(monkeypatch: pytest.MonkeyPatch, empty_file: Path) -> None:
    monkeypatch.setenv("AUTORETRAIN_MODEL_NAME", "from-os-environ")
    assert load_settings(empty_file).model_name == "from-os-environ"


# ------------------------------------------------------------------------------------ overrides
def test_with_overrides_applies_known_keys_and_ignores_the_rest() -> None:
    base = Settings()
    s = base.with_overrides({"f1_min": 0.7, "families": ["sgd"], "cv_folds": "4", "reason": "manual",
                             "dry_run": True, "accuracy_min": None})
    assert s.f1_min == 0.7
    assert s.families == ("sgd",)
    assert s.cv_folds == 4
    assert s.accuracy_min == base.accuracy_min
    assert base.f1_min == 0.90  # the original is unchanged


@pytest.mark.parametrize("overrides", [None, {}, {"reason": "x"}, {"f1_min": None}])
def test_with_overrides_without_changes_returns_same_object(overrides: dict | None) -> None:
    base = Settings()
    assert base.with_overrides(overrides) is base


def test_with_overrides_validates() -> None:
    with pytest.raises(SettingsError, match=r"f1_min=1\.5 is outside \[0, 1\]"):
        Settings().with_overrides({"f1_min": 1.5})


def test_with_overrides_rejects_non_integer_float_for_int() -> None:
    with pytest.raises(SettingsError, match=r"override: cv_folds=3\.5 is not a valid"):
        Settings().with_overrides({"cv_folds": 3.5})
    assert Settings().with_overrides({"cv_folds": 3.0}).cv_folds == 3


# ----------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(("changes", "message"), [
    ({"f1_min": 1.5}, r"f1_min=1.5 is outside [0, 1]"),
    ({"accuracy_min": -0.1}, r"accuracy_min=-0.1 is outside [0, 1]"),
    ({"test_size": float("nan")}, r"test_size=nan is outside [0, 1]"),
    ({"cv_folds": 1}, r"cv_folds=1 must be at least 2"),
    ({"canary_percent": 101}, r"canary_percent=101 must be between 0 and 100"),
    ({"families": ("logreg", "xgboost")}, r"unknown model families ['xgboost']"),
    ({"positive_label": "junk"}, r"positive_label='junk' is not one of labels=('ham', 'spam')"),
    ({"target_metric": "auc"}, r"target_metric='auc' is not one of"),
    ({"tie_break_metric": "speed"}, r"tie_break_metric='speed' is not one of"),
    ({"labels": ("a", "b", "c"), "positive_label": "a"}, r"labels=('a', 'b', 'c') must name exactly two"),
])
def test_invalid_values_name_the_offending_value(changes: dict, message: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings(**changes)
    assert message in str(info.value)


def test_invalid_value_from_file_and_env(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.json", {"families": ["logreg", "random_forest"]})
    with pytest.raises(SettingsError, match=r"unknown model families \['random_forest'\]"):
        load_settings(path, environ={})
    with pytest.raises(SettingsError, match=r"cv_folds=1 must be at least 2"):
        load_settings(_write(tmp_path / "ok.json", {}), environ={"AUTORETRAIN_CV_FOLDS": "1"})


def test_negative_label_follows_positive_label() -> None:
    assert Settings(positive_label="ham").negative_label == "spam"


# -------------------------------------------------------------------------------- derived URIs
def test_resolved_data_uri_relative_to_project_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUTORETRAIN_HOME", str(tmp_path))
    assert Settings(data_uri="data/x.tsv").resolved_data_uri() == str(tmp_path.resolve() / "data/x.tsv")


def test_resolved_data_uri_keeps_absolute_paths_and_uris(tmp_path: Path) -> None:
    absolute = str(tmp_path / "x.tsv")
    assert Settings(data_uri=absolute).resolved_data_uri() == absolute
    for uri in ("s3://bucket/key.tsv", "https://example.org/x.tsv", "postgresql://h/db#t",
                "sqlite:///relative.db#t"):
        assert Settings(data_uri=uri).resolved_data_uri() == uri


def test_resolved_tracking_uri_explicit_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-env:5000")
    assert Settings(tracking_uri="http://explicit:5000").resolved_tracking_uri() == "http://explicit:5000"


def test_resolved_tracking_uri_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://from-env:5000")
    assert Settings().resolved_tracking_uri() == "http://from-env:5000"


def test_resolved_tracking_uri_defaults_to_sqlite_in_state_dir(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("AUTORETRAIN_HOME", str(tmp_path))
    s = Settings(state_dir="state")
    assert s.state_path == tmp_path.resolve() / "state"
    assert s.resolved_tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'state' / 'mlflow.db'}"


def test_tracking_uri_from_env_var_via_load_settings(empty_file: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://ignored:1")
    s = load_settings(empty_file, environ={"AUTORETRAIN_TRACKING_URI": "http://127.0.0.1:5999"})
    assert s.resolved_tracking_uri() == "http://127.0.0.1:5999"


def test_secrets_are_masked_in_as_dict_and_repr():
    settings = Settings(api_token="s3cret-token")
    assert settings.as_dict()["api_token"] == "***"
    assert "s3cret-token" not in repr(settings)
    assert Settings().as_dict()["api_token"] == ""


# ------------------------------------------------------------------------ secrets: one masking rule
PG_SECRET = "s3cret-Pg/pw"  # a '/' inside: SQLAlchemy reads it as the password, urlparse would not


@pytest.mark.parametrize(("value", "expected"), [
    (f"postgresql://app:{PG_SECRET}@db:5432/autoretrain", "postgresql://app:***@db:5432/autoretrain"),
    ("postgresql+psycopg2://u:p%40ss@h/db#t", "postgresql+psycopg2://u:***@h/db#t"),
    ("https://alice:tok3n@mlflow.example.org/", "https://alice:***@mlflow.example.org/"),
    ("https://x.example.org/data.tsv?X-Amz-Signature=abcd1234&v=2", "https://x.example.org/data.tsv?X-Amz-Signature=***&v=2"),
    ("postgresql://u@h/db?sslpassword=hunter22", "postgresql://u@h/db?sslpassword=***"),
    ("http://host:8080/path@x", "http://host:8080/path@x"),  # a port and a path, no password
    ("s3://bucket/prefix", "s3://bucket/prefix"),
    ("data/sms.tsv", "data/sms.tsv"),
])
def test_redact_url_keeps_where_it_points(value: str, expected: str) -> None:
    from autoretrain.config import redact_url

    assert redact_url(value) == expected


@pytest.mark.parametrize("name", ["api_token", "admin_token", "feedback_token", "integrity_key", "routing_salt",
                                  "mlflow_password", "webhook_secret"])
def test_secret_fields_by_name(name: str) -> None:
    from autoretrain.config import is_secret

    assert is_secret(name)
    assert not is_secret("database_url") and not is_secret("slack_conn_id")


def test_public_masks_every_credential_and_repr_uses_it() -> None:
    settings = Settings(api_token="tok-abcdef123456", database_url=f"postgresql://app:{PG_SECRET}@127.0.0.1/db",
                        tracking_uri="https://bob:mlfl0w-pw@mlflow.internal/", routing_salt="salt-xyz-987",
                        feedback_uri="https://h.example/f.csv?token=feedback-tok-1")
    public = settings.public()
    text = json.dumps(public) + repr(settings)
    for secret in ("tok-abcdef123456", PG_SECRET, "mlfl0w-pw", "salt-xyz-987", "feedback-tok-1"):
        assert secret not in text
    assert public["database_url"] == "postgresql://app:***@127.0.0.1/db"
    assert public["tracking_uri"] == "https://bob:***@mlflow.internal/"
    assert public["api_token"] == public["routing_salt"] == "***"
    assert settings.as_dict() == public
    assert set(settings.secret_values()) >= {"tok-abcdef123456", PG_SECRET, "mlfl0w-pw", "salt-xyz-987",
                                             "feedback-tok-1"}
    assert "autoretrain" not in Settings().secret_values()  # the built-in salt is public: never masked in text


def test_scrub_removes_secrets_from_free_text() -> None:
    settings = Settings(api_token="tok-abcdef123456", database_url=f"postgresql://app:{PG_SECRET}@127.0.0.1/db")
    text = (f"could not connect to postgresql://app:{PG_SECRET}@127.0.0.1/db (token tok-abcdef123456); "
            "see https://u:other-pw@h/x")
    clean = settings.scrub(text)
    assert PG_SECRET not in clean and "tok-abcdef123456" not in clean and "other-pw" not in clean
    assert "postgresql://app:***@127.0.0.1/db" in clean


# ------------------------------------------------------------------------ a run's overrides
WORKER = Settings(accuracy_min=0.95, f1_min=0.90, ece_max=0.05, min_improvement=0.005, significance_level=0.05)
DECLARED = {"families", "cv_folds", "data_uri", "accuracy_min", "f1_min", "ece_max", "promote", "reason"}


@pytest.mark.parametrize(("conf", "message"), [
    ({"accuracy_min": 0}, "accuracy_min=0.0 is below the configured 0.95: a run may only raise it"),
    ({"ece_max": 0.5}, "ece_max=0.5 is above the configured 0.05: a run may only lower it"),
    ({"database_url": "postgresql://evil@10.0.0.9/x"}, "conf key(s) ['database_url'] are not Params of this DAG"),
    ({"tracking_uri": "http://10.0.0.9:5000"}, "conf key(s) ['tracking_uri'] are not Params of this DAG"),
    ({"bogus": 1, "zzz": 2}, "conf key(s) ['bogus', 'zzz'] are not Params of this DAG"),
])
def test_for_run_refuses_forged_conf(conf: dict, message: str) -> None:
    from autoretrain.config import RunOverrideRefused

    with pytest.raises(RunOverrideRefused) as info:
        WORKER.for_run(conf, declared=DECLARED, conf=conf)
    assert message in str(info.value)


def test_for_run_refuses_connection_settings_even_when_declared() -> None:
    from autoretrain.config import RunOverrideRefused

    params = {"tracking_uri": "http://10.0.0.9:5000", "api_token": "x"}
    with pytest.raises(RunOverrideRefused, match=r"setting\(s\) \['api_token', 'tracking_uri'\] come from the "
                                                 "worker's configuration only"):
        WORKER.for_run(params, declared=DECLARED | set(params), conf=params)


def test_for_run_applies_tighter_gates_and_declared_settings() -> None:
    conf = {"accuracy_min": 0.97, "ece_max": 0.03, "families": ["sgd"], "reason": "x", "f1_min": None}
    settings = WORKER.for_run(conf, declared=DECLARED, conf=conf)
    assert (settings.accuracy_min, settings.ece_max, settings.families, settings.f1_min) == (0.97, 0.03, ("sgd",),
                                                                                            0.90)
    assert WORKER.for_run({}, declared=DECLARED, conf={}) is WORKER


# ------------------------------------------------------------------------- approval gate (issue 14)
def test_a_run_may_add_the_approval_gate_but_never_drop_it() -> None:
    from autoretrain.config import RunOverrideRefused

    declared = {"promotion_mode", "approval_timeout_hours"}
    auto, approve = Settings(), Settings(promotion_mode="approve")
    assert auto.for_run({"promotion_mode": "approve"}, declared=declared).promotion_mode == "approve"
    assert approve.for_run({"promotion_mode": "approve", "approval_timeout_hours": 0.005},
                           declared=declared).approval_timeout_hours == 0.005
    with pytest.raises(RunOverrideRefused, match="promotion_mode='auto' is refused: the configured mode is 'approve'"):
        approve.for_run({"promotion_mode": "auto"}, declared=declared)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("promotion_mode", "sometimes", r"promotion_mode='sometimes' is not one of \('auto', 'approve'\)"),
    ("approval_timeout_hours", 0.0, "approval_timeout_hours=0.0 must be > 0"),
    ("feedback_retrain_min_labels", 0, "feedback_retrain_min_labels=0 at least 1"),
])
def test_approval_and_feedback_settings_are_checked(field: str, value: object, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings(**{field: value})


def test_alert_channel_and_deadline_settings_are_checked():
    assert Settings(run_deadlines=("monitoring=30m", "training=2h", "rollback=45s", "maintenance=0")).deadlines() == {
        "monitoring": 1800.0, "training": 7200.0, "rollback": 45.0}
    assert Settings(run_deadlines=("x=5",)).deadlines() == {"x": 300.0}  # minutes without a unit
    for bad in ("monitoring", "=5m", "monitoring=5d", "monitoring=-1m"):
        with pytest.raises(SettingsError, match="run_deadlines entry"):
            Settings(run_deadlines=(bad,))
    with pytest.raises(SettingsError, match=r"alert_email_severities has \['page'\]"):
        Settings(alert_email_severities=("critical", "page"))
    with pytest.raises(SettingsError, match="not name@domain"):
        Settings(alert_email_to=("ops@example.com", "not an address"))
    env = load_settings(environ={"AUTORETRAIN_ALERT_EMAIL_TO": "a@x.test, b@x.test", "AUTORETRAIN_RUN_DEADLINES": ""})
    assert env.alert_email_to == ("a@x.test", "b@x.test") and env.deadlines() == {}
