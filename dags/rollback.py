"""
### rollback

Put the `champion` alias back on the recorded `previous` champion (or the version in the
`to_version` Param) in one step, recorded in the `alias_audit` table with the reason, routing back
to full on it, and a rollback alert. The prediction service picks the alias move up on its next
poll. `autoretrain rollback` does the same from the shell.
"""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import dag

from autoretrain.airflow.deadlines import run_deadline
from autoretrain.airflow.defaults import TAGS_BASE, default_args
from autoretrain.airflow.params import rollback_params
from autoretrain.airflow.promotion import RollbackOperator


@dag(
    dag_id=Path(__file__).stem,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=[*TAGS_BASE, "promotion"],
    default_args=default_args(),
    deadline=run_deadline(Path(__file__).stem),
    params=rollback_params(),
    doc_md=__doc__,
)
def rollback() -> None:
    RollbackOperator(task_id="rollback")


rollback()
