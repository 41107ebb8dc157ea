"""Alert messages as pure functions (no I/O): the same text goes to the log, the database and Slack."""

from __future__ import annotations

from collections.abc import Sequence


def failure_message(*, dag_id: str, task_id: str, run_id: str, try_number: int | None,
                    error: str | None, log_url: str | None = None) -> str:
    """A one-paragraph task-failure alert with where to look next."""
    lines = [f":red_circle: Task failed: {dag_id}.{task_id}", f"Run: {run_id} (try {try_number or '?'})"]
    if error:
        lines.append(f"Error: {_clip(error)}")
    if log_url:
        lines.append(f"Logs: {log_url}")
    return "\n".join(lines)


def gate_failure_message(*, model_name: str, version: str, reasons: Sequence[str],
                         run_url: str | None = None) -> str:
    """A model version that failed its quality gates (it keeps no alias)."""
    failed = [r for r in reasons if "FAIL" in r or "missing" in r] or list(reasons)
    lines = [f":warning: {model_name} version {version} failed its quality gates and gets no alias"]
    lines += [f"- {r}" for r in failed]
    if run_url:
        lines.append(f"MLflow: {run_url}")
    return "\n".join(lines)


def _clip(text: str, limit: int = 500) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
