"""move_alias on SQLite with an in-memory registry: record and move together, undo on failure, replay on retry.

The same paths against a real mlflow server and Postgres: tests/integration/test_promotion_rollout.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, RESOURCE_DOES_NOT_EXIST

from autoretrain import registry
from autoretrain.audit import aliases, intents, reconcile
from autoretrain.db.engine import make_engine
from tests.conftest import migrated

NAME = "sms-spam"
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeRegistry:
    """The four MlflowClient registry calls move_alias uses, with injectable failures."""

    def __init__(self, versions: tuple[str, ...] = ("1", "2", "3"), aliases: dict[str, str] | None = None) -> None:
        self.versions = set(versions)
        self.aliases = dict(aliases or {})
        self.writes: list[tuple[str, str, str | None]] = []
        self.fail: Callable[[str, str, str | None], bool] = lambda op, alias, version: False

    def _down(self, op: str, alias: str = "", version: str | None = None) -> None:
        if self.fail(op, alias, version):
            raise MlflowException(f"API request to /{op} failed with exception ConnectionError",
                                  error_code=INTERNAL_ERROR)

    def get_model_version(self, name: str, version: str) -> ModelVersion:
        self._down("get_version", "", version)
        if version not in self.versions:
            raise MlflowException(f"Model Version (name={name}, version={version}) not found",
                                  error_code=RESOURCE_DOES_NOT_EXIST)
        return ModelVersion(name=name, version=version, creation_timestamp=0, source=f"models:/m-{version}",
                            run_id=f"run-{version}", tags=[])

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        self._down("get_alias", alias)
        if alias not in self.aliases:
            raise MlflowException(f"alias {alias} not found", error_code=RESOURCE_DOES_NOT_EXIST)
        return self.get_model_version(name, self.aliases[alias])

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self._down("set_alias", alias, version)
        self.writes.append(("set", alias, version))
        self.aliases[alias] = version

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self._down("delete_alias", alias)
        self.writes.append(("delete", alias, None))
        self.aliases.pop(alias, None)


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(migrated(f"sqlite:///{tmp_path / 'audit.db'}"))
    yield engine
    engine.dispose()


def move(client: FakeRegistry, engine, alias: str = "champion", version: str | None = "2", *, run_id: str = "run-a",
         **kwargs) -> registry.AliasMove:
    return registry.move_alias(client, engine, name=NAME, alias=alias, version=version, actor="test:promote",
                               reason="challenger wins", run_id=run_id, at=AT, **kwargs)


def rows(engine) -> list[tuple]:
    return [(r.alias, r.action, r.from_version, r.to_version) for r in reversed(aliases.history(engine, NAME))]


# ---------------------------------------------------------------------------------------- moves
def test_first_champion_records_one_row_and_no_previous(engine) -> None:
    client = FakeRegistry()
    result = move(client, engine, version="1", action="assign", reasons=["gates pass"], metrics={"f1": 0.93})
    assert client.aliases == {"champion": "1"}
    assert result.changes == ({"alias": "champion", "from_version": None, "to_version": "1"},)
    (record,) = aliases.history(engine, NAME)
    assert (record.alias, record.action, record.from_version, record.to_version) == ("champion", "assign", None, "1")
    assert (record.actor, record.run_id, record.reason, record.created_at) == ("test:promote", "run-a",
                                                                               "challenger wins", AT)
    assert (record.reasons, record.metrics, record.move_id) == (["gates pass"], {"f1": 0.93}, result.move_id)
    assert record.idempotency_key == "run-a|sms-spam|champion|assign|1"


def test_promotion_records_the_replaced_champion_as_previous(engine) -> None:
    client = FakeRegistry(aliases={"champion": "1", "previous": "3"})
    result = move(client, engine, version="2", action="promote")
    assert client.aliases == {"champion": "2", "previous": "1"}
    assert client.writes == [("set", "previous", "1"), ("set", "champion", "2")]  # previous first
    assert rows(engine) == [("previous", "promote", "3", "1"), ("champion", "promote", "1", "2")]
    assert {r.move_id for r in aliases.history(engine, NAME)} == {result.move_id}
    assert result.version_of("champion") == "2" and result.version_of("previous") == "1"


def test_a_retry_replays_the_recorded_move_without_touching_mlflow(engine) -> None:
    client = FakeRegistry(aliases={"champion": "1"})
    first = move(client, engine)
    writes = list(client.writes)
    again = move(client, engine)
    assert again.replayed and not first.replayed
    assert (again.move_id, again.changes) == (first.move_id, first.changes)
    assert client.writes == writes and len(rows(engine)) == 2
    other_run = move(client, engine, run_id="run-b")  # another run moving to the same version is recorded
    assert not other_run.replayed and rows(engine)[-1] == ("champion", "move", "2", "2")


@pytest.mark.parametrize(("previous", "expected_aliases", "expected_rows"), [
    ("record", {"champion": "2", "previous": "1"}, [("previous", "3", "1"), ("champion", "1", "2")]),
    ("keep", {"champion": "2", "previous": "3"}, [("champion", "1", "2")]),
    ("clear", {"champion": "2"}, [("champion", "1", "2"), ("previous", "3", None)]),
])
def test_previous_modes(engine, previous, expected_aliases, expected_rows) -> None:
    client = FakeRegistry(aliases={"champion": "1", "previous": "3"})
    move(client, engine, previous=previous)
    assert client.aliases == expected_aliases
    assert [(a, f, t) for a, _, f, t in rows(engine)] == expected_rows


def test_champion_already_in_place_is_recorded_without_touching_previous(engine) -> None:
    client = FakeRegistry(aliases={"champion": "2", "previous": "1"})
    move(client, engine)
    assert client.aliases == {"champion": "2", "previous": "1"}
    assert rows(engine) == [("champion", "move", "2", "2")]


def test_removing_an_alias(engine) -> None:
    client = FakeRegistry(aliases={"champion": "1", "challenger": "3"})
    result = move(client, engine, alias="challenger", version=None, action="withdraw")
    assert client.aliases == {"champion": "1"}
    assert rows(engine) == [("challenger", "withdraw", "3", None)]
    assert result.version_of("challenger") is None


def test_other_aliases_never_touch_previous(engine) -> None:
    client = FakeRegistry(aliases={"champion": "1", "challenger": "2"})
    move(client, engine, alias="challenger", version="3", action="canary")
    assert client.aliases == {"champion": "1", "challenger": "3"}
    assert rows(engine) == [("challenger", "canary", "2", "3")]


# -------------------------------------------------------------------------------------- failures
def test_unknown_version_moves_nothing(engine) -> None:
    client = FakeRegistry(aliases={"champion": "1"})
    with pytest.raises(registry.RegistryError, match="has no version '9'"):
        move(client, engine, version="9")
    assert client.aliases == {"champion": "1"} and rows(engine) == [] and client.writes == []


@pytest.mark.parametrize("failing", ["get_alias", "get_version", "set_alias"])
def test_mlflow_down_moves_nothing_records_nothing_and_a_retry_succeeds(engine, failing: str) -> None:
    client = FakeRegistry(aliases={"champion": "1"})
    client.fail = lambda op, alias, version: op == failing
    with pytest.raises(registry.AliasMoveError, match="nothing was recorded, retry"):
        move(client, engine)
    assert client.aliases == {"champion": "1"} and rows(engine) == []
    client.fail = lambda op, alias, version: False
    move(client, engine)
    assert client.aliases == {"champion": "2", "previous": "1"}
    assert rows(engine) == [("previous", "move", None, "1"), ("champion", "move", "1", "2")]


def test_failure_between_two_alias_writes_is_undone(engine) -> None:
    client = FakeRegistry(aliases={"champion": "1", "previous": "3"})
    client.fail = lambda op, alias, version: op == "set_alias" and alias == "champion"
    with pytest.raises(registry.AliasMoveError, match="failed and was undone"):
        move(client, engine)
    assert client.writes == [("set", "previous", "1"), ("set", "previous", "3")]  # moved, then put back
    assert client.aliases == {"champion": "1", "previous": "3"} and rows(engine) == []


def test_undo_of_a_new_alias_deletes_it(engine) -> None:
    client = FakeRegistry(aliases={"champion": "1"})
    client.fail = lambda op, alias, version: op == "set_alias" and alias == "champion"
    with pytest.raises(registry.AliasMoveError):
        move(client, engine)
    assert client.writes == [("set", "previous", "1"), ("delete", "previous", None)]
    assert client.aliases == {"champion": "1"}


def test_a_database_that_refuses_the_intent_moves_nothing(engine, monkeypatch) -> None:
    client = FakeRegistry(aliases={"champion": "1"})

    def refuse(self) -> None:  # the database connection is lost at COMMIT of the intent: MLflow is never touched
        raise sa.exc.OperationalError("COMMIT", {}, Exception("database went away"))

    with monkeypatch.context() as patch:
        patch.setattr(sa.engine.base.RootTransaction, "commit", refuse)
        with pytest.raises(registry.AliasMoveError, match="database went away"):
            move(client, engine)
    assert client.aliases == {"champion": "1"} and client.writes == []
    assert rows(engine) == [] and intents.history(engine, NAME) == []


def test_a_failed_completion_leaves_a_pending_intent_that_the_retry_completes(engine, monkeypatch) -> None:
    client = FakeRegistry(aliases={"champion": "1"})

    def refuse(*args, **kwargs) -> None:
        raise sa.exc.OperationalError("INSERT", {}, Exception("database went away"))

    with monkeypatch.context() as patch:
        patch.setattr(intents, "complete", refuse)
        with pytest.raises(registry.AliasMoveError, match="MLflow made the move .* stays pending"):
            move(client, engine)
    assert client.aliases == {"champion": "2", "previous": "1"} and rows(engine) == []  # MLflow moved, audit not yet
    (pending,) = intents.history(engine, NAME)
    assert pending.status == "pending"
    writes = list(client.writes)
    again = move(client, engine)  # the retry settles the intent (MLflow had made it), then finds it recorded
    assert again.replayed and again.move_id == pending.move_id and client.writes == writes
    assert rows(engine) == [("previous", "move", None, "1"), ("champion", "move", "1", "2")]
    assert [i.status for i in intents.history(engine, NAME)] == ["completed"]


class Crash(BaseException):
    """A process dying between two steps (not an Exception: nothing may catch it)."""


def test_a_crash_before_mlflow_is_rolled_forward_by_the_reconciler(engine, monkeypatch) -> None:
    client = FakeRegistry(aliases={"champion": "1"})
    with monkeypatch.context() as patch:
        patch.setattr(registry, "_apply", lambda *a: (_ for _ in ()).throw(Crash()))
        with pytest.raises(Crash):
            move(client, engine, action="promote")
    assert client.aliases == {"champion": "1"} and [i.status for i in intents.history(engine, NAME)] == ["pending"]
    result = reconcile.reconcile(client, engine, name=NAME, run_id="reconcile-1", at=AT)
    assert client.aliases == {"champion": "2", "previous": "1"}
    assert result.in_agreement and len(result.finished) == 1
    assert rows(engine) == [("previous", "promote", None, "1"), ("champion", "promote", "1", "2")]
    assert [i.status for i in intents.history(engine, NAME)] == ["completed"]


def test_a_crash_between_two_alias_writes_is_finished_by_the_next_move(engine, monkeypatch) -> None:
    client = FakeRegistry(aliases={"champion": "1", "previous": "3"})
    real = registry._apply
    calls: list[str] = []

    def crash_on_second(client_, name, alias, version) -> None:
        calls.append(alias)
        if len(calls) == 2:
            raise Crash()
        real(client_, name, alias, version)

    with monkeypatch.context() as patch:
        patch.setattr(registry, "_apply", crash_on_second)
        with pytest.raises(Crash):
            move(client, engine, action="promote")
    assert client.aliases == {"champion": "1", "previous": "1"}  # half-way
    move(client, engine, alias="challenger", version="3", action="canary", run_id="run-b")  # another move of the model
    assert client.aliases == {"champion": "2", "previous": "1", "challenger": "3"}
    assert rows(engine) == [("previous", "promote", "3", "1"), ("champion", "promote", "1", "2"),
                            ("challenger", "canary", None, "3")]


def test_a_crashed_move_overtaken_by_an_external_one_is_abandoned_and_the_move_reported(engine, monkeypatch) -> None:
    client = FakeRegistry(aliases={"champion": "1"})
    with monkeypatch.context() as patch:
        patch.setattr(registry, "_apply", lambda *a: (_ for _ in ()).throw(Crash()))
        with pytest.raises(Crash):
            move(client, engine, alias="challenger", version="2", action="canary")
    client.aliases["challenger"] = "3"  # someone sets it in MLflow meanwhile
    result = reconcile.reconcile(client, engine, name=NAME, run_id="reconcile-1", at=AT)
    assert [i.status for i in intents.history(engine, NAME)] == ["abandoned"]
    assert result.external == ({"alias": "champion", "from_version": None, "to_version": "1"},
                               {"alias": "challenger", "from_version": None, "to_version": "3"})
    assert client.aliases == {"champion": "1", "challenger": "3"}  # the reconciler never moves an external alias


def test_a_failed_undo_says_where_each_alias_is_and_records_undo_failed(engine) -> None:
    client = FakeRegistry(aliases={"champion": "1", "previous": "3"})
    reconcile.reconcile(client, engine, name=NAME, run_id="baseline", at=AT)  # the fixture's aliases, audited
    # MLflow goes away after the first write: the champion move and the undo of previous both fail
    client.fail = lambda op, alias, version: op == "set_alias" and len(client.writes) >= 1
    with pytest.raises(registry.AliasMoveError) as failed:
        move(client, engine, action="promote")
    message = str(failed.value)
    assert "was undone" not in message and "could NOT be undone" in message
    assert "previous is on 1 (moved from 3, could not be put back)" in message
    assert "champion is on 1 (not moved" in message
    assert client.aliases == {"champion": "1", "previous": "1"}
    assert rows(engine)[-1] == ("previous", "undo_failed", "3", "1")  # the audit says what stands
    (intent,) = intents.history(engine, NAME)
    assert intent.status == "undo_failed" and "could NOT be undone" in (intent.detail or "")
    client.fail = lambda op, alias, version: False
    assert reconcile.reconcile(client, engine, name=NAME, run_id="r", at=AT).in_agreement  # audit == MLflow
    move(client, engine, action="promote")  # the retry plans again from where the aliases are
    assert client.aliases == {"champion": "2", "previous": "1"}
    assert rows(engine)[-1] == ("champion", "promote", "1", "2")


def test_an_external_move_is_recorded_and_alerted_once(engine) -> None:
    client = FakeRegistry(aliases={})
    move(client, engine, version="1", action="assign")
    client.aliases["champion"] = "3"  # straight through MLflow's API
    alerts: list = []
    result = reconcile.reconcile(client, engine, name=NAME, run_id="monitoring/scheduled__1", at=AT,
                                 notify=alerts.append)
    assert result.external == ({"alias": "champion", "from_version": "1", "to_version": "3"},)
    (alert,) = alerts
    assert (alert.kind, alert.severity) == ("external_alias_move", "critical")
    assert "champion: audited version 1 → version 3 in MLflow" in alert.text
    (external,) = [r for r in aliases.history(engine, NAME) if r.action == "external"]
    assert (external.alias, external.from_version, external.to_version, external.actor) == (
        "champion", "1", "3", "autoretrain.reconciler")
    again = reconcile.reconcile(client, engine, name=NAME, run_id="monitoring/scheduled__2", at=AT,
                                notify=alerts.append)
    assert again.in_agreement and len(alerts) == 1  # recorded now: not reported again


def test_first_champion_is_decided_under_the_lock(engine) -> None:
    """Two first trainings at once: the second reads the champion the first made (threads, one SQLite file)."""
    client = FakeRegistry(versions=("1", "2"))
    slow_reads = threading.Barrier(2, timeout=5)

    def read_alias(name: str, alias: str, _real=client.get_model_version_by_alias) -> ModelVersion:
        if alias == "champion":
            try:  # without the lock both threads would be here at once and both see no champion
                slow_reads.wait(timeout=0.5)
            except threading.BrokenBarrierError:
                pass
        return _real(name, alias)

    client.get_model_version_by_alias = read_alias  # type: ignore[method-assign]
    results: dict[str, registry.Assignment] = {}

    def train(version: str) -> None:
        results[version] = registry.assign_version(client, engine, name=NAME, version=version,
                                                   actor="test:training", run_id=f"training/run-{version}", at=AT)

    threads = [threading.Thread(target=train, args=(v,)) for v in ("1", "2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(r.alias for r in results.values()) == ["challenger", "champion"]
    champion = next(v for v, r in results.items() if r.alias == "champion")
    assert client.aliases["champion"] == champion and client.aliases["challenger"] != champion
    assert sorted(a for a, *_ in rows(engine)) == ["challenger", "champion"]


def test_bad_previous_mode_is_refused(engine) -> None:
    with pytest.raises(ValueError, match="previous='drop'"):
        move(FakeRegistry(), engine, previous="drop")


# -------------------------------------------------------------------------------------- rollback
def test_rollback_restores_previous_and_clears_it(engine) -> None:
    client = FakeRegistry(aliases={"champion": "2", "previous": "1"})
    result = registry.rollback_champion(client, engine, name=NAME, actor="cli:ops", reason="complaints",
                                        run_id="rb-1")
    assert client.aliases == {"champion": "1"}
    assert result.changes == ({"alias": "champion", "from_version": "2", "to_version": "1"},
                              {"alias": "previous", "from_version": "1", "to_version": None})
    assert rows(engine) == [("champion", "rollback", "2", "1"), ("previous", "rollback", "1", None)]
    with pytest.raises(registry.RegistryError, match="no 'previous' alias"):
        registry.rollback_champion(client, engine, name=NAME, actor="cli:ops", reason="again", run_id="rb-2")
    assert len(rows(engine)) == 2


def test_rollback_to_a_named_version(engine) -> None:
    client = FakeRegistry(aliases={"champion": "3"})
    registry.rollback_champion(client, engine, name=NAME, actor="cli:ops", reason="known good", run_id="rb",
                               to_version="1")
    assert client.aliases == {"champion": "1"}
    with pytest.raises(registry.RegistryError, match="has no version '7'"):
        registry.rollback_champion(client, engine, name=NAME, actor="cli:ops", reason="x", run_id="rb2",
                                   to_version="7")


# ---------------------------------------------------------------------------------- append-only
@pytest.mark.parametrize("statement", ["UPDATE alias_audit SET reason = 'edited'", "DELETE FROM alias_audit"])
def test_the_audit_table_is_append_only(engine, statement: str) -> None:
    move(FakeRegistry(), engine)
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text(statement))
    assert len(rows(engine)) == 1 and aliases.history(engine, NAME)[0].reason == "challenger wins"


def test_a_retried_rollback_replays_instead_of_failing(engine) -> None:
    client = FakeRegistry(aliases={"champion": "2", "previous": "1"})
    first = registry.rollback_champion(client, engine, name=NAME, actor="airflow:rollback", reason="bad", run_id="r")
    again = registry.rollback_champion(client, engine, name=NAME, actor="airflow:rollback", reason="bad", run_id="r")
    assert again.replayed and again.changes == first.changes and len(rows(engine)) == 2
    assert client.aliases == {"champion": "1"}
