"""Sources under control (issue 12, finding 4): hostile ``data_uri``s on loopback, each refused.

``file:///etc/passwd``, a symlink inside an allowed folder that points at a secret outside it,
an HTTP source that redirects to another host/port, an internal HTTP endpoint that is not an
allowed host, a 50 MB file over the cap (peak memory measured), another database or one of
AutoRetrain's own tables as a SQL source, and a non-dataset inside the allowed folder: each fails
with a clear error that quotes none of the content, and through the ``dataset_validation`` DAG
none of it reaches the report, the task log, the alert row or the Slack text.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import sqlite3
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from autoretrain.config import Settings
from autoretrain.data.sources import DataSourceError, SourcePolicy, SourceRefused, read_dataset
from tests.conftest import dag_from_bag, migrated, task_states

pytestmark = pytest.mark.integration

LABELS = ("ham", "spam")
SECRET_LINE = "db_password=Hunter2-do-not-leak token=xoxb-9999-leak"
MARKERS = ("Hunter2-do-not-leak", "xoxb-9999-leak", "root:x:0:0", "root:", "/bin/bash", "/bin/sh")


def _leaks(text: str) -> list[str]:
    return [m for m in MARKERS if m in text]


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """(an allowed data folder, a folder outside it holding a secret file)."""
    data, outside = tmp_path / "data", tmp_path / "outside"
    data.mkdir()
    outside.mkdir()
    (outside / "secret.env").write_text(f"{SECRET_LINE}\n" * 3, encoding="utf-8")
    return data, outside


def _policy(data: Path, **changes) -> SourcePolicy:
    settings = Settings(data_allowed_roots=(str(data),), **changes)
    return SourcePolicy.from_settings(settings)


class _Server:
    """A loopback HTTP server in a thread that counts its requests; ``routes`` maps path -> (status, headers, body)."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], bytes]]) -> None:
        self.routes, self.requests = routes, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.requests += 1
                status, headers, body = outer.routes.get(self.path, (404, {}, b"nothing here"))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Transfer-Encoding" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if headers.get("Transfer-Encoding") == "chunked":
                    for start in range(0, len(body), 1 << 20):
                        piece = body[start:start + (1 << 20)]
                        self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda *args: None  # type: ignore[method-assign]  # client hung up: expected
        Handler.protocol_version = "HTTP/1.1"
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def servers() -> Iterator[list[_Server]]:
    made: list[_Server] = []
    yield made
    for server in made:
        server.close()


# ------------------------------------------------------------------------------------ local files
def test_etc_passwd_is_refused_without_reading_it(roots) -> None:
    data, _ = roots
    for uri in ("file:///etc/passwd", "/etc/passwd", f"{data}/../../../../../../etc/passwd"):
        with pytest.raises(SourceRefused, match="outside the allowed folders") as info:
            read_dataset(uri, labels=LABELS, policy=_policy(data))
        assert "data_allowed_roots" in str(info.value) and _leaks(str(info.value)) == []


@pytest.mark.parametrize("target", ["/etc/shadow", "outside/secret.env"])
def test_a_symlink_inside_the_root_to_a_file_outside_is_refused(roots, target: str) -> None:
    data, outside = roots
    link = data / "innocent.tsv"
    link.symlink_to(target if target.startswith("/") else outside / "secret.env")
    with pytest.raises(SourceRefused, match="outside the allowed folders") as info:
        read_dataset(str(link), labels=LABELS, policy=_policy(data))
    assert "resolves to" in str(info.value) and _leaks(str(info.value)) == []


def test_a_device_or_a_non_dataset_inside_the_root_is_refused_without_echo(roots) -> None:
    data, _ = roots
    (data / "zero").symlink_to("/dev/zero")
    with pytest.raises(DataSourceError):
        read_dataset(str(data / "zero"), labels=LABELS, policy=dataclasses.replace(_policy(data),
                                                                                   roots=(data, Path("/dev"))))
    config = data / "app.conf"  # inside the root, but not a dataset: no line of it is quoted
    config.write_text("[db]\n" + f"{SECRET_LINE}\n" * 20, encoding="utf-8")
    with pytest.raises(DataSourceError, match="21 malformed line") as info:
        read_dataset(str(config), labels=LABELS, policy=_policy(data))
    assert "no line quoted" in str(info.value) and _leaks(str(info.value)) == []
    tabbed = data / "tabbed.tsv"  # tab-separated, but its "labels" are not labels: no value quoted
    tabbed.write_text(f"{SECRET_LINE}\tx\n" * 10, encoding="utf-8")
    with pytest.raises(DataSourceError, match="no value quoted") as info:
        read_dataset(str(tabbed), labels=LABELS, policy=_policy(data))
    assert _leaks(str(info.value)) == []


def test_a_dataset_with_one_bad_line_quotes_a_short_redacted_snippet(roots) -> None:
    data, _ = roots
    good = "".join(f"ham\tmessage {i}\n" for i in range(20))
    (data / "one_bad.tsv").write_text(good + "call me on 07700 900123 " + "x" * 200 + "\n", encoding="utf-8")
    with pytest.raises(DataSourceError) as info:
        read_dataset(str(data / "one_bad.tsv"), labels=LABELS, policy=_policy(data))
    message = str(info.value)
    assert "line 21: expected 'label<TAB>text'" in message and "'call me on [PHONE] xxx" in message
    assert "07700" not in message and "x" * 61 not in message  # redacted, and at most 60 characters


def test_a_file_over_the_cap_is_refused_before_it_is_read(roots) -> None:
    data, _ = roots
    big = data / "big.tsv"
    line = b"ham\t" + b"a perfectly ordinary message " * 3 + b"\n"
    with big.open("wb") as handle:
        for _ in range(50_000_000 // len(line) + 1):
            handle.write(line)
    assert big.stat().st_size >= 50_000_000
    tracemalloc.start()
    try:
        with pytest.raises(SourceRefused, match=r"over the limit data_max_bytes=20,000,000") as info:
            read_dataset(str(big), labels=LABELS, policy=_policy(data))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"{big.stat().st_size:,} bytes" in str(info.value)
    assert peak < 2_000_000, peak  # nothing of the 50 MB was read (before: 634 MB for this file)
    print(f"\n50 MB file over the cap: refused, peak traced memory {peak / 1e6:.2f} MB")


# ------------------------------------------------------------------------------------------ HTTP
def test_an_internal_endpoint_that_is_not_an_allowed_host_is_never_contacted(roots, servers) -> None:
    data, _ = roots
    internal = _Server({"/latest/meta-data/iam": (200, {}, f"ham\t{SECRET_LINE}\n".encode())})
    servers.append(internal)
    with pytest.raises(SourceRefused, match=r"host 127.0.0.1:\d+ is not in data_allowed_hosts") as info:
        read_dataset(f"http://127.0.0.1:{internal.port}/latest/meta-data/iam", labels=LABELS, policy=_policy(data))
    assert internal.requests == 0 and _leaks(str(info.value)) == []


def test_a_redirect_to_another_host_or_port_is_not_followed(roots, servers) -> None:
    data, _ = roots
    target = _Server({"/secret": (200, {}, f"ham\t{SECRET_LINE}\n".encode())})
    servers.append(target)
    allowed = _Server({"/data.tsv": (302, {"Location": f"http://127.0.0.1:{target.port}/secret"}, b""),
                       "/moved.tsv": (301, {"Location": "/data2.tsv"}, b""),
                       "/data2.tsv": (200, {}, b"ham\thello\nspam\tWIN now\n")})
    servers.append(allowed)
    policy = _policy(data, data_allowed_hosts=(f"127.0.0.1:{allowed.port}",))
    with pytest.raises(SourceRefused, match="redirect to another host") as info:
        read_dataset(f"http://127.0.0.1:{allowed.port}/data.tsv", labels=LABELS, policy=policy)
    assert target.requests == 0 and _leaks(str(info.value)) == []
    same_host = read_dataset(f"http://127.0.0.1:{allowed.port}/moved.tsv", labels=LABELS, policy=policy)
    assert same_host.frame["text"].tolist() == ["hello", "WIN now"]  # a same-host redirect is fine


def test_a_stream_over_the_cap_stops_at_the_cap(roots, servers) -> None:
    data, _ = roots
    body = b"ham\tmessage\n" * (50_000_000 // 12 + 1)  # 50 MB, sent chunked: no Content-Length to refuse on
    server = _Server({"/big.tsv": (200, {"Transfer-Encoding": "chunked"}, body)})
    servers.append(server)
    policy = _policy(data, data_allowed_hosts=(f"127.0.0.1:{server.port}",), data_max_bytes=5_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(SourceRefused, match=r"more than data_max_bytes=5,000,000 bytes"):
            read_dataset(f"http://127.0.0.1:{server.port}/big.tsv", labels=LABELS, policy=policy)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * 5_000_000, peak
    print(f"\n50 MB chunked HTTP stream, cap 5 MB: refused, peak traced memory {peak / 1e6:.1f} MB")


# ------------------------------------------------------------------------------------------- SQL
def test_sql_only_the_configured_database_and_allowed_tables(roots, tmp_path: Path) -> None:
    data, _ = roots
    own, other = tmp_path / "autoretrain.db", tmp_path / "other.db"
    for path in (own, other):
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE messages (label TEXT, text TEXT)")
            conn.execute("CREATE TABLE prediction_log (label TEXT, text TEXT)")
            conn.execute("INSERT INTO messages VALUES ('ham', 'hi'), ('spam', 'WIN')")
        conn.close()
    policy = _policy(data, database_url=f"sqlite:///{own}", data_allowed_tables=("messages", "prediction_log"))
    assert read_dataset(f"sqlite:///{own}#messages", labels=LABELS, policy=policy).frame["text"].tolist() == [
        "hi", "WIN"]
    with pytest.raises(SourceRefused, match="must be the configured database_url"):
        read_dataset(f"sqlite:///{other}#messages", labels=LABELS, policy=policy)
    with pytest.raises(SourceRefused, match="table 'prediction_log' is one of AutoRetrain's own tables"):
        read_dataset(f"sqlite:///{own}#prediction_log", labels=LABELS, policy=policy)  # listed, but its own table
    with pytest.raises(SourceRefused, match="table 'sqlite_master' is not in data_allowed_tables"):
        read_dataset(f"sqlite:///{own}#sqlite_master", labels=LABELS, policy=policy)


# ------------------------------------------------------------------------------ through the DAG
@pytest.fixture
def dag_env(monkeypatch, tmp_path, postgres_db, slack_receiver, roots):
    data, _ = roots
    db = migrated(postgres_db("hostile"))
    for key, value in {"AUTORETRAIN_ARTIFACT_STORE_URI": str(tmp_path / "artifacts"),
                       "AUTORETRAIN_DATABASE_URL": db, "AUTORETRAIN_DATA_ALLOWED_ROOTS": str(data),
                       "AUTORETRAIN_ALERT_COOLDOWN_MINUTES": "0",
                       "AUTORETRAIN_SLACK_WEBHOOK_CONN_ID": "slack_hostile_test",
                       "AIRFLOW_CONN_SLACK_HOSTILE_TEST": slack_receiver.webhook_connection()}.items():
        monkeypatch.setenv(key, value)
    return db


def test_hostile_sources_through_the_dag_leave_no_content_anywhere(airflow_db, dag_env, roots, tmp_path,
                                                                    slack_receiver, capfd, caplog) -> None:
    import sqlalchemy as sa

    data, outside = roots
    (data / "link.tsv").symlink_to(outside / "secret.env")
    (data / "app.conf").write_text("[db]\n" + f"{SECRET_LINE}\n" * 20, encoding="utf-8")
    outcomes = {}
    for uri in ("file:///etc/passwd", str(data / "link.tsv"), str(data / "app.conf")):
        run = dag_from_bag("dataset_validation").test(run_conf={"data_uri": uri})
        assert run.state == "failed" and task_states(run)["validate"] == "failed", uri
        outcomes[uri] = run.run_id
    reports = "\n".join(p.read_text() for p in (tmp_path / "artifacts").rglob("report.*"))
    assert reports.count("readable") >= 3 and "outside the allowed folders" in reports
    engine = sa.create_engine(dag_env)
    try:
        with engine.connect() as conn:
            alerts = [r.message for r in conn.execute(sa.text("SELECT message FROM alert_log"))]
    finally:
        engine.dispose()
    assert len(alerts) == 3 and all("readable" in a for a in alerts), alerts
    slack = json.dumps([r.body for r in slack_receiver.requests])
    assert len(slack_receiver.requests) == 3
    captured = capfd.readouterr()
    logs = captured.out + captured.err + "\n".join(r.getMessage() for r in caplog.records)
    places = {"reports": reports, "alert rows": "\n".join(alerts), "slack": slack, "logs": logs}
    assert {place: _leaks(text) for place, text in places.items() if _leaks(text)} == {}
