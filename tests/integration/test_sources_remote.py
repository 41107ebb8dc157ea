"""Remote data sources on loopback: an HTTP server, the local Postgres, and a moto S3 server.

The source policy admits them explicitly here (loopback as an allowed host, the test database as the
configured one with its tables, the test bucket); what it refuses is in ``test_hostile_sources.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import http.server
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autoretrain.data import sources
from autoretrain.data.sources import DataSourceError, frame_digest, read_dataset, read_texts
from tests.conftest import S3Server, free_port

pytestmark = pytest.mark.integration

LABELS = ("ham", "spam")
TSV = "ham\tSee you at 5\nspam\tWIN \u00a31000 now!\nham\tok\n".encode()
ROWS = {"label": ["ham", "spam", "ham"], "text": ["See you at 5", "WIN \u00a31000 now!", "ok"]}


@pytest.fixture(autouse=True)
def allowed(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback HTTP, the test's Postgres database and tables, and its bucket are allowed sources."""
    policy = dataclasses.replace(sources.default_policy(), hosts=("127.0.0.1",),
                                 tables=("sms_messages", "feeds.inbox", "mislabelled", "no_such_table"))
    if "pg_url" in request.fixturenames:
        policy = dataclasses.replace(policy, database_url=request.getfixturevalue("pg_url"))
    if "bucket" in request.fixturenames:
        policy = dataclasses.replace(policy, hosts=(*policy.hosts, f"s3://{request.getfixturevalue('bucket')}"))
    monkeypatch.setattr(sources, "default_policy", lambda: policy)


# ------------------------------------------------------------------------------------------ HTTP
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # keep the test output clean


@pytest.fixture(scope="module")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A static file server on 127.0.0.1 in a thread: (base URL, folder it serves)."""
    root = tmp_path_factory.mktemp("http")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, name="test-http-source", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_http_tsv(http_root: tuple[str, Path]) -> None:
    base, root = http_root
    (root / "sms.tsv").write_bytes(TSV)
    ds = read_dataset(f"{base}/sms.tsv", labels=LABELS)
    assert ds.frame.to_dict("list") == ROWS
    assert ds.digest == frame_digest(ds.frame)
    assert ds.source == f"{base}/sms.tsv"


def test_http_csv_with_query_string(http_root: tuple[str, Path]) -> None:
    base, root = http_root
    (root / "sms.csv").write_bytes(b'label,text\nspam,"Free, now"\nham,hi\n')
    ds = read_dataset(f"{base}/sms.csv?version=2", labels=LABELS)
    assert ds.frame.to_dict("list") == {"label": ["spam", "ham"], "text": ["Free, now", "hi"]}


def test_http_texts(http_root: tuple[str, Path]) -> None:
    base, root = http_root
    (root / "texts.txt").write_bytes(b"first message\nham\tsecond\n")
    assert read_texts(f"{base}/texts.txt") == ["first message", "second"]


def test_http_404(http_root: tuple[str, Path]) -> None:
    base, _ = http_root
    with pytest.raises(DataSourceError) as info:
        read_dataset(f"{base}/missing.tsv", labels=LABELS)
    assert str(info.value) == f"{base}/missing.tsv: HTTP 404 File not found"


def test_http_bad_content_names_the_url_and_line(http_root: tuple[str, Path]) -> None:
    base, root = http_root
    (root / "bad.tsv").write_bytes(b"ham\tok\nspam without tab\n")
    expected = r"1 malformed line\(s\): line 2: expected 'label<TAB>text'"
    with pytest.raises(DataSourceError, match=expected) as info:
        read_dataset(f"{base}/bad.tsv", labels=LABELS)
    assert str(info.value).startswith(f"{base}/bad.tsv: ")


def test_http_connection_refused() -> None:
    uri = f"http://127.0.0.1:{free_port()}/sms.tsv"  # nothing listens on a just-released port
    with pytest.raises(DataSourceError, match=r"cannot be fetched: .*Connection refused") as info:
        read_dataset(uri, labels=LABELS)
    assert str(info.value).startswith(f"{uri}: ")


# -------------------------------------------------------------------------------------- Postgres
@pytest.fixture(scope="module")
def pg_url(postgres_db: Callable[[str], str]) -> str:
    import sqlalchemy as sa

    url = postgres_db("sources")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE sms_messages (id serial PRIMARY KEY, label text, text text)"))
            conn.execute(sa.text("INSERT INTO sms_messages (label, text) VALUES (:label, :text)"),
                         [{"label": label, "text": text} for label, text in zip(ROWS["label"], ROWS["text"],
                                                                                strict=True)])
            conn.execute(sa.text("CREATE SCHEMA feeds"))
            conn.execute(sa.text("CREATE TABLE feeds.inbox (category varchar(8), body text)"))
            conn.execute(sa.text("INSERT INTO feeds.inbox VALUES ('spam', 'Claim now'), ('ham', NULL)"))
            conn.execute(sa.text("CREATE TABLE mislabelled (label text, text text)"))
            conn.execute(sa.text("INSERT INTO mislabelled VALUES ('ham', 'a'), ('phish', 'b')"))
    finally:
        engine.dispose()
    return url


def test_postgres_table(pg_url: str) -> None:
    ds = read_dataset(f"{pg_url}#sms_messages", labels=LABELS)
    assert ds.frame.to_dict("list") == ROWS
    assert ds.digest == frame_digest(ds.frame)


def test_postgres_schema_table_and_custom_columns(pg_url: str) -> None:
    explicit_driver = pg_url.replace("postgresql://", "postgresql+psycopg2://")
    ds = read_dataset(f"{explicit_driver}#feeds.inbox", labels=LABELS, text_column="body",
                      label_column="category")
    assert ds.frame.to_dict("list") == {"label": ["spam", "ham"], "text": ["Claim now", ""]}


def test_postgres_wrong_table(pg_url: str) -> None:
    with pytest.raises(DataSourceError) as info:
        read_dataset(f"{pg_url}#no_such_table", labels=LABELS)
    message = str(info.value)
    assert message.startswith(f"{pg_url}#no_such_table: cannot read table 'no_such_table': ")
    assert 'relation "no_such_table" does not exist' in message


def test_postgres_password_never_appears_in_errors(pg_url: str) -> None:
    secret_url = pg_url.replace("postgresql://postgres@", "postgresql://postgres:Sup3r-Secret@")
    assert "Sup3r-Secret" in secret_url
    for table, expected in (("mislabelled", "1 row(s) with an unknown label"),
                            ("no_such_table", "cannot read table 'no_such_table'")):
        with pytest.raises(DataSourceError) as info:
            read_dataset(f"{secret_url}#{table}", labels=LABELS)
        assert expected in str(info.value)
        assert "Sup3r-Secret" not in str(info.value)
        assert "postgres:***@" in str(info.value)


# ---------------------------------------------------------------------------------------- S3 (moto)
def _allow_bucket(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    policy = sources.default_policy()
    monkeypatch.setattr(sources, "default_policy",
                        lambda: dataclasses.replace(policy, hosts=(*policy.hosts, f"s3://{name}")))


@pytest.fixture
def s3(moto_server: S3Server, monkeypatch: pytest.MonkeyPatch):
    """A boto3 S3 client on the moto server, with the environment read_dataset's client will use."""
    import boto3

    for key, value in {"AWS_ENDPOINT_URL": moto_server.endpoint, "AWS_ACCESS_KEY_ID": "test",
                       "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)
    return boto3.client("s3")


@pytest.fixture
def bucket(s3) -> str:
    name = f"autoretrain-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def test_s3_tsv(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="data/sms.tsv", Body=TSV)
    ds = read_dataset(f"s3://{bucket}/data/sms.tsv", labels=LABELS)
    assert ds.frame.to_dict("list") == ROWS
    assert ds.source == f"s3://{bucket}/data/sms.tsv"


def test_s3_csv(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="sms.csv", Body=b"text,label\nhello,ham\nwin,spam\n")
    ds = read_dataset(f"s3://{bucket}/sms.csv", labels=LABELS)
    assert ds.frame.to_dict("list") == {"label": ["ham", "spam"], "text": ["hello", "win"]}


def test_s3_missing_key(s3, bucket: str) -> None:
    with pytest.raises(DataSourceError, match=rf"^s3://{bucket}/nope\.tsv: S3 error NoSuchKey: "):
        read_dataset(f"s3://{bucket}/nope.tsv", labels=LABELS)


def test_s3_missing_bucket(s3, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"no-such-bucket-{uuid.uuid4().hex[:12]}"
    uri = f"s3://{name}/x.tsv"
    _allow_bucket(monkeypatch, name)
    with pytest.raises(DataSourceError, match=rf"^{re.escape(uri)}: S3 error NoSuchBucket: "):
        read_dataset(uri, labels=LABELS)


def test_s3_bad_content_is_reported_like_a_file(s3, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="bad.tsv", Body=b"ham\tok\nspam\tcaf\xe9\n")
    with pytest.raises(DataSourceError) as info:
        read_dataset(f"s3://{bucket}/bad.tsv", labels=LABELS)
    assert str(info.value) == (f"s3://{bucket}/bad.tsv: line 2: not valid UTF-8 (byte 0xe9); "
                               "re-encode the file as UTF-8")


def test_s3_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_ACCESS_KEY_ID": "test",
                       "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"}.items():
        monkeypatch.setenv(key, value)
    _allow_bucket(monkeypatch, "b")
    with pytest.raises(DataSourceError, match=r"^s3://b/k\.tsv: S3 is unreachable or misconfigured: "):
        read_dataset("s3://b/k.tsv", labels=LABELS)
