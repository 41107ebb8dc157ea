"""AutoRetrain's errors as Airflow sees them: fail now, or let Airflow retry. Decided here only.

Every operator and sensor entry point (``execute``, ``poke``, ``choose_branch``) is wrapped with
:func:`maps_errors`. An :class:`~autoretrain.errors.AutoRetrainError` whose ``retryable`` flag is
set (MLflow or the database away, an alias move that did not go through) propagates unchanged, so
the task's ``retries`` apply; any other fails the task at once, without retries: a dataset that
failed its blocking checks as :class:`DatasetRejected` (the failure callback turns it into a
``validation_failed`` alert), everything else as ``AirflowFailException``. Exceptions that are not
AutoRetrain's (a bug, a library's surprise) keep Airflow's default: they are retried.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from airflow.sdk.exceptions import AirflowFailException

from autoretrain.data.payloads import CheckSummary, RejectedDataset
from autoretrain.errors import AutoRetrainError

if TYPE_CHECKING:
    from autoretrain.data.validation import ValidationReport

P = ParamSpec("P")
R = TypeVar("R")


class DatasetRejected(AirflowFailException):
    """A dataset failed blocking checks (no retry); ``summary`` holds the report for the alert."""

    def __init__(self, summary: RejectedDataset) -> None:
        self.summary = summary.copy()
        failed = "; ".join(f"{f['name']}: {f['details']}" for f in self.summary.get("failures", []))
        super().__init__(f"dataset {self.summary.get('source')} failed validation: {failed}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.summary,)

    @classmethod
    def from_report(cls, report: ValidationReport) -> DatasetRejected:
        """From a :class:`~autoretrain.data.validation.ValidationReport` (the training gate's)."""
        from autoretrain.data.pii import redact

        failures: list[CheckSummary] = [{"name": c.name, "score": c.score, "threshold": c.threshold,
                                         "details": redact(c.details), "blocking": c.blocking}
                                        for c in report.failures]
        return cls({"source": report.source, "passed": report.passed, "failures": failures})


def for_airflow(err: AutoRetrainError) -> BaseException:
    """The exception a task raises for ``err``: ``err`` itself when a retry may help, else a failure."""
    from autoretrain.data.validation import DataValidationError  # pandas: not at DAG parse time

    if err.retryable:
        return err
    if isinstance(err, DataValidationError):
        return DatasetRejected.from_report(err.report)
    return AirflowFailException(f"{type(err).__name__}: {err}")


def maps_errors(method: Callable[P, R]) -> Callable[P, R]:
    """Decorator for ``execute``/``poke``/``choose_branch``: AutoRetrain errors through :func:`for_airflow`."""
    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except AutoRetrainError as err:
            mapped = for_airflow(err)
            if mapped is err:
                raise
            raise mapped from err
    return wrapper
