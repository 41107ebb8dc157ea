"""One error hierarchy: every failure AutoRetrain raises on purpose, and whether a retry can help.

Each class says once whether its fault is transient (``retryable``: MLflow, the database or the
artifact store away; an alias move that did not go through) and which exit code the command line
returns. Two places read these flags and nothing else decides: the Airflow edge
(:func:`autoretrain.airflow.errors.for_airflow`: fail now or let Airflow retry) and the command
line (:func:`autoretrain.cli.main.main`: the exit code). Subclasses keep a built-in base
(``ValueError``, ``RuntimeError``) where callers already catch it.
"""

from __future__ import annotations

from typing import ClassVar

#: exit codes of ``autoretrain ...``: a check said no / bad input or state / try again later (sysexits)
EXIT_CHECK_FAILED, EXIT_INVALID, EXIT_TEMPORARY = 1, 2, 75


class AutoRetrainError(Exception):
    """Base of every error AutoRetrain raises on purpose."""

    #: True: the fault is transient and the same step may succeed when retried
    retryable: ClassVar[bool] = False
    #: what ``autoretrain ...`` exits with when this error ends a command
    exit_code: ClassVar[int] = EXIT_INVALID


class TransientError(AutoRetrainError):
    """A dependency (MLflow, the database, the artifact store) failed for now: retry the step."""

    retryable = True
    exit_code = EXIT_TEMPORARY
