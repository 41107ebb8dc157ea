"""One error hierarchy, mapped once to Airflow (fail now vs retry) and once to CLI exit codes."""

from __future__ import annotations

import importlib
import inspect
import logging
import pkgutil

import pytest
from airflow.sdk.exceptions import AirflowFailException

import autoretrain
from autoretrain.airflow.errors import DatasetRejected, for_airflow, maps_errors
from autoretrain.cli.main import main
from autoretrain.data.snapshots import SnapshotError
from autoretrain.data.validation import CheckResult, DataValidationError, ValidationReport
from autoretrain.errors import EXIT_CHECK_FAILED, EXIT_INVALID, EXIT_TEMPORARY, AutoRetrainError
from autoretrain.registry import AliasMoveError, ModelIntegrityError, RegistryError


def project_exceptions() -> list[type[BaseException]]:
    """Every exception class defined in the product package (except the Airflow-side mapped form)."""
    found = []
    for info in pkgutil.walk_packages(autoretrain.__path__, "autoretrain."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == info.name and issubclass(cls, BaseException) and cls is not DatasetRejected:
                found.append(cls)
    return found


def test_every_project_exception_derives_from_the_base() -> None:
    classes = project_exceptions()
    assert len(classes) >= 14
    assert [c.__qualname__ for c in classes if not issubclass(c, AutoRetrainError)] == []


@pytest.mark.parametrize(("error", "retryable", "code"), [
    (AliasMoveError("mlflow away"), True, EXIT_TEMPORARY),
    (SnapshotError("s3 away"), True, EXIT_TEMPORARY),
    (RegistryError("no such version"), False, EXIT_INVALID),
    (ModelIntegrityError("digest differs"), False, EXIT_INVALID),
])
def test_flags(error: AutoRetrainError, retryable: bool, code: int) -> None:
    assert (error.retryable, error.exit_code) == (retryable, code)


def test_a_transient_error_reaches_airflow_unchanged_so_its_retries_apply() -> None:
    error = AliasMoveError("MLflow refused the move")
    assert for_airflow(error) is error


def test_a_permanent_error_fails_the_task_without_retry() -> None:
    mapped = for_airflow(RegistryError("version 9 of sms-spam does not exist"))
    assert type(mapped) is AirflowFailException
    assert str(mapped) == "RegistryError: version 9 of sms-spam does not exist"


def test_a_rejected_dataset_becomes_datasetrejected_with_its_failed_checks() -> None:
    report = ValidationReport(source="s3://b/sms.tsv", checks=(
        CheckResult("minimum_samples", 3.0, 1000.0, False, "3 rows, fewer than 1000", blocking=True),))
    mapped = for_airflow(DataValidationError(report))
    assert isinstance(mapped, DatasetRejected) and isinstance(mapped, AirflowFailException)
    assert mapped.summary["source"] == "s3://b/sms.tsv"
    assert [f["name"] for f in mapped.summary["failures"]] == ["minimum_samples"]
    assert DataValidationError(report).exit_code == EXIT_CHECK_FAILED


def test_maps_errors_keeps_the_cause_and_leaves_other_exceptions_alone() -> None:
    @maps_errors
    def permanent() -> None:
        raise ModelIntegrityError("sha256 mismatch")

    @maps_errors
    def transient() -> None:
        raise AliasMoveError("retry me")

    @maps_errors
    def bug() -> None:
        raise KeyError("not ours")

    with pytest.raises(AirflowFailException) as failed:
        permanent()
    assert isinstance(failed.value.__cause__, ModelIntegrityError)
    with pytest.raises(AliasMoveError):
        transient()
    with pytest.raises(KeyError):  # Airflow's default applies: retried
        bug()


def test_the_cli_maps_an_error_to_one_line_and_its_exit_code(tmp_path, caplog) -> None:
    bad = tmp_path / "settings.json"
    bad.write_text('{"cv_folds": 1}')
    caplog.set_level(logging.ERROR)
    assert main(["--config", str(bad), "settings"]) == EXIT_INVALID
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["cv_folds=1 must be at least 2"]
