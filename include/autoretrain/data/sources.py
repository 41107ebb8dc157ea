"""Read a labelled text dataset from a URI: local path/``file://``, ``http(s)://``, ``s3://`` or SQL.

File formats (local, HTTP, S3):

* ``label<TAB>text`` per line, no header (the SMS Spam Collection format; default);
  an optional first line naming the columns (``label<TAB>text``) is skipped;
* ``.csv`` with a header that names the label and text columns;
* unlabelled ``text`` per line (:func:`read_texts`, for drift checks).

A SQL source is a SQLAlchemy URL whose fragment names the table, e.g.
``postgresql://postgres@127.0.0.1/mydb#sms_messages`` or ``sqlite:////data/x.db#messages``.

Every problem is reported as a :class:`DataSourceError` that names the source, the line and what
was expected.

What may be read is a :class:`SourcePolicy` (from the settings ``data_allowed_roots``,
``data_allowed_hosts``, ``data_allowed_tables``, ``data_max_bytes``): local files only under the
allowed folders, symlinks resolved first; http(s) only from an allowed host, redirects only to the
same host (at most :data:`MAX_REDIRECTS`); S3 only from an allowed bucket; SQL only from the
configured ``database_url`` and an allowed table (never one of AutoRetrain's own); every source
streamed and refused once it passes ``max_bytes``. Errors quote at most a short redacted snippet
(:data:`SNIPPET_CHARS`) of a line, and none at all from a file that does not look like a dataset.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import logging
import os
import re
import stat
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

import pandas as pd

from autoretrain.config import Settings, redact_url
from autoretrain.data.pii import redact
from autoretrain.errors import AutoRetrainError

log = logging.getLogger(__name__)

FILE_SCHEMES = ("", "file", "http", "https", "s3")
MAX_LINE_CHARS = 100_000
MAX_REPORTED_PROBLEMS = 5
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
#: characters of a line an error may quote (redacted), and only from a file that looks like a dataset
SNIPPET_CHARS = 60
MAX_REDIRECTS = 3
CHUNK_BYTES = 1 << 16


class DataSourceError(AutoRetrainError, ValueError):
    """A dataset could not be read, or its content does not have the expected shape."""


class SourceRefused(DataSourceError):
    """``data_uri``/``feedback_uri`` points where the source policy does not allow (no byte was read)."""


@dataclass(frozen=True)
class SourcePolicy:
    """Where sources may be read from and how much (see the module docstring); build it with :meth:`from_settings`."""

    roots: tuple[Path, ...]
    hosts: tuple[str, ...] = ()  # "host", "host:port" (http/https), "s3://bucket"
    tables: tuple[str, ...] = ()
    database_url: str | None = None  # the one database a SQL source may read
    max_bytes: int = 20_000_000
    own_tables: frozenset[str] = field(default_factory=frozenset)  # AutoRetrain's tables: never a source

    @classmethod
    def from_settings(cls, settings: Settings) -> SourcePolicy:
        """The policy of ``settings``: relative roots against the project root, ``{state_dir}`` replaced."""
        roots = tuple(settings.resolve_path(r.replace("{state_dir}", str(settings.state_path))).resolve()
                      for r in settings.data_allowed_roots)
        database = settings.database_url or f"sqlite:///{settings.state_path / 'autoretrain.db'}"
        return cls(roots=roots, hosts=tuple(h.strip().lower() for h in settings.data_allowed_hosts),
                   tables=tuple(settings.data_allowed_tables), database_url=database,
                   max_bytes=settings.data_max_bytes, own_tables=_own_tables())


def _own_tables() -> frozenset[str]:
    from autoretrain.db.schema import metadata

    return frozenset(metadata.tables)


def default_policy() -> SourcePolicy:
    """The policy of the built-in settings (the project's ``data/`` and ``<state_dir>/data``; nothing remote)."""
    return SourcePolicy.from_settings(Settings())


@dataclass(frozen=True)
class Dataset:
    """A labelled text dataset (columns ``label`` and ``text``), where it came from and its digest."""

    frame: pd.DataFrame
    source: str
    digest: str

    def __len__(self) -> int:
        return len(self.frame)


def frame_digest(frame: pd.DataFrame) -> str:
    """SHA-256 of the rows (label, text) in order: the same content gives the same digest.

    Each row is encoded as a JSON array, so texts holding tabs or newlines cannot make two
    different datasets collide.
    """
    h = hashlib.sha256()
    for label, text in zip(frame["label"], frame["text"], strict=True):
        h.update(json.dumps([str(label), str(text)], ensure_ascii=False).encode() + b"\n")
    return h.hexdigest()


def read_dataset(uri: str, *, labels: Sequence[str], text_column: str = "text",
                 label_column: str = "label", policy: SourcePolicy | None = None) -> Dataset:
    """Read a labelled dataset from ``uri`` within ``policy`` (default: :func:`default_policy`).

    Raises :class:`SourceRefused` when the policy forbids the source and :class:`DataSourceError`
    naming any other problem.
    """
    policy = policy or default_policy()
    scheme = urlparse(uri).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = ""
    shown = redact_uri(uri)  # error messages end up in task logs and alerts: no passwords
    if scheme in FILE_SCHEMES:
        raw = read_bytes(uri, policy=policy)
        if uri.lower().split("?")[0].endswith(".csv"):
            frame = parse_csv(raw, source=shown, text_column=text_column, label_column=label_column)
        else:
            frame = parse_tsv(raw, source=shown)
    else:
        frame = read_sql_table(uri, text_column=text_column, label_column=label_column, policy=policy)
    _check_labels(frame, labels=labels, source=shown)
    frame = frame.drop(columns="line").reset_index(drop=True)
    log.info("read %d rows from %s", len(frame), redact_uri(uri))
    return Dataset(frame=frame, source=uri, digest=frame_digest(frame))


def read_texts(uri: str, *, policy: SourcePolicy | None = None) -> list[str]:
    """Read unlabelled messages: ``text`` per line, or ``label<TAB>text`` (the label is dropped)."""
    text = _decode(read_bytes(uri, policy=policy), source=redact_uri(uri))
    out = []
    for line in text.splitlines():
        if line.strip():
            out.append(line.split("\t", 1)[1] if "\t" in line else line)
    if not out:
        raise DataSourceError(f"{redact_uri(uri)}: no messages found (expected one message per line)")
    return out


# ---------------------------------------------------------------------------------------- transport
def read_bytes(uri: str, *, policy: SourcePolicy | None = None) -> bytes:
    """The raw bytes behind a local path, ``file://``, ``http(s)://`` or ``s3://`` URI, within ``policy``."""
    policy = policy or default_policy()
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower() if len(parsed.scheme) > 1 else ""
    if scheme in ("", "file"):
        return _read_file(Path(unquote(parsed.path) if scheme == "file" else uri), policy)
    if scheme in ("http", "https"):
        return _read_http(uri, policy)
    if scheme == "s3":
        return _read_s3(parsed.netloc, parsed.path.lstrip("/"), uri, policy)
    raise DataSourceError(f"{redact_uri(uri)}: unsupported scheme {scheme!r}; use a path, file://, http(s)://, "
                          "s3:// or a SQLAlchemy URL with #table")


def _read_file(path: Path, policy: SourcePolicy) -> bytes:
    """A regular file under one of the allowed roots (symlinks resolved before the check), up to the cap."""
    real = path.absolute().resolve()  # every symlink on the way, so data/link -> /etc/shadow is /etc/shadow
    if not any(real.is_relative_to(root) for root in policy.roots):
        target = "" if real == path.absolute() else f" (resolves to {real})"
        raise SourceRefused(f"{path}{target}: outside the allowed folders {[str(r) for r in policy.roots]}; "
                            "add its folder to the setting data_allowed_roots")
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError as err:
        raise DataSourceError(f"{path}: file not found (check data_uri)") from err
    except IsADirectoryError as err:
        raise DataSourceError(f"{path}: is a directory, expected a file") from err
    except OSError as err:
        raise DataSourceError(f"{path}: cannot be read: {err.strerror}") from err
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise DataSourceError(f"{path}: is a directory, expected a file")
        raise SourceRefused(f"{path}: not a regular file (a device, pipe or socket is never a dataset)")
    with os.fdopen(fd, "rb") as handle:
        _check_size(info.st_size, path, policy)
        try:
            return _bounded(handle, source=str(path), policy=policy)
        except OSError as err:
            raise DataSourceError(f"{path}: cannot be read: {err.strerror}") from err


def _check_size(size: int | None, source: object, policy: SourcePolicy) -> None:
    if size is not None and size > policy.max_bytes:
        raise SourceRefused(f"{source}: {size:,} bytes, over the limit data_max_bytes={policy.max_bytes:,}")


def _bounded(stream: Any, *, source: str, policy: SourcePolicy) -> bytes:
    """Read ``stream`` in chunks, refusing as soon as it passes ``max_bytes`` (never the whole of a big source)."""
    chunks, total = [], 0
    for chunk in _chunks(stream):
        total += len(chunk)
        if total > policy.max_bytes:
            raise SourceRefused(f"{source}: more than data_max_bytes={policy.max_bytes:,} bytes; refused after "
                                f"reading {total:,}")
        chunks.append(chunk)
    return b"".join(chunks)


def _chunks(stream: IO[bytes] | Any) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK_BYTES):
        yield chunk


def host_allowed(scheme: str, host: str | None, port: int | None, policy: SourcePolicy) -> bool:
    """``host`` (or ``host:port``) is listed in the policy's hosts (http/https)."""
    if not host:
        return False
    host = host.lower()
    default = {"http": 80, "https": 443}.get(scheme)
    return host in policy.hosts or f"{host}:{port or default}" in policy.hosts


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follows at most :data:`MAX_REDIRECTS` redirects, and only to the same host and port (https stays https)."""

    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        old, new = urlparse(req.full_url), urlparse(newurl)
        same = (old.hostname, old.port or _default_port(old.scheme)) == (new.hostname, new.port or
                                                                           _default_port(new.scheme))
        downgrade = old.scheme == "https" and new.scheme != "https"
        if not same or downgrade or new.scheme not in ("http", "https"):
            raise SourceRefused(f"{redact_uri(req.full_url)}: HTTP {code} redirect to another host "
                                f"({new.scheme}://{new.hostname}:{new.port or _default_port(new.scheme)}) refused; "
                                "only same-host redirects are followed")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _default_port(scheme: str) -> int | None:
    return {"http": 80, "https": 443}.get(scheme)


def _read_http(uri: str, policy: SourcePolicy, timeout: float = 30.0) -> bytes:
    parsed = urlparse(uri)
    if not host_allowed(parsed.scheme.lower(), parsed.hostname, parsed.port, policy):
        raise SourceRefused(f"{redact_uri(uri)}: host {parsed.hostname}:{parsed.port or _default_port(parsed.scheme)} "
                            "is not in data_allowed_hosts; add it there to read from it")
    opener = urllib.request.build_opener(_SameHostRedirects())
    try:
        with opener.open(uri, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            _check_size(int(length) if length and length.isdigit() else None, redact_uri(uri), policy)
            return _bounded(response, source=redact_uri(uri), policy=policy)
    except urllib.error.HTTPError as err:
        raise DataSourceError(f"{redact_uri(uri)}: HTTP {err.code} {_snippet(str(err.reason))}") from err
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DataSourceError(f"{redact_uri(uri)}: cannot be fetched: {_snippet(str(reason))}") from err


def _read_s3(bucket: str, key: str, uri: str, policy: SourcePolicy) -> bytes:
    import boto3
    import botocore.exceptions

    if not bucket or not key:
        raise DataSourceError(f"{uri}: expected s3://bucket/key")
    if f"s3://{bucket.lower()}" not in policy.hosts:
        raise SourceRefused(f"{uri}: bucket {bucket!r} is not in data_allowed_hosts; add 's3://{bucket}' there "
                            "to read from it")
    try:
        obj = boto3.client("s3").get_object(Bucket=bucket, Key=key)
        _check_size(obj.get("ContentLength"), uri, policy)
        return _bounded(obj["Body"], source=uri, policy=policy)
    except botocore.exceptions.ClientError as err:
        code = err.response.get("Error", {}).get("Code", "?")
        raise DataSourceError(f"{uri}: S3 error {code}: {_snippet(str(err), 200)}") from err
    except botocore.exceptions.BotoCoreError as err:
        raise DataSourceError(f"{uri}: S3 is unreachable or misconfigured: {_snippet(str(err), 200)}") from err


def read_sql_table(uri: str, *, text_column: str, label_column: str,
                   policy: SourcePolicy | None = None) -> pd.DataFrame:
    """Read ``label`` and ``text`` from the table named in the URI's fragment (``url#table``).

    The URL must name the policy's database (same backend, host, port, database and user; its
    password, if any, is ignored: the configured one connects), and the table must be allowed.
    """
    import sqlalchemy as sa

    policy = policy or default_policy()
    url, _, table = uri.partition("#")
    if not table or not _IDENTIFIER.match(table):
        raise DataSourceError(f"{redact_uri(uri)}: a SQL source needs a table name after '#', "
                              f"e.g. postgresql://host/db#messages (found {_snippet(table, 40)!r})")
    for column in (text_column, label_column):
        if not _IDENTIFIER.match(column):
            raise DataSourceError(f"column name {_snippet(column, 40)!r} is not a plain SQL identifier")
    try:
        wanted = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as err:
        raise DataSourceError(f"{redact_uri(uri)}: not a usable SQLAlchemy URL: {_snippet(str(err))}") from err
    configured = sa.make_url(policy.database_url) if policy.database_url else None
    if configured is None or _where(wanted) != _where(configured):
        raise SourceRefused(f"{redact_uri(uri)}: a SQL source must be the configured database_url "
                            f"({redact_uri(policy.database_url or 'none')}), not another database")
    if table.split(".")[-1] in policy.own_tables:
        raise SourceRefused(f"{redact_uri(uri)}: table {table!r} is one of AutoRetrain's own tables, never a "
                            "data source")
    if table not in policy.tables:
        raise SourceRefused(f"{redact_uri(uri)}: table {table!r} is not in data_allowed_tables {list(policy.tables)}")
    query = sa.text(f"SELECT {label_column} AS label, {text_column} AS text FROM {table}")
    try:
        engine = sa.create_engine(configured)
    except (sa.exc.ArgumentError, ImportError) as err:
        raise DataSourceError(f"{redact_uri(uri)}: not a usable SQLAlchemy URL: {_snippet(str(err))}") from err
    try:
        rows = _bounded_rows(engine, query, source=redact_uri(uri), policy=policy)
    except sa.exc.SQLAlchemyError as err:
        detail = str(err.orig if hasattr(err, "orig") else err).strip().splitlines()[0]
        raise DataSourceError(f"{redact_uri(uri)}: cannot read table {table!r}: {_snippet(detail, 120)}") from err
    finally:
        engine.dispose()
    frame = pd.DataFrame(rows, columns=["label", "text"])
    frame["line"] = range(1, len(frame) + 1)  # row number in the query result
    frame["label"] = frame["label"].astype(str)
    frame["text"] = frame["text"].fillna("").astype(str)
    if frame.empty:
        raise DataSourceError(f"{redact_uri(uri)}: table {table!r} has no rows")
    return frame


def _where(url: Any) -> tuple[Any, ...]:
    """What makes two SQLAlchemy URLs the same database (the driver and password aside)."""
    return (url.get_backend_name(), url.host, url.port, url.database, url.username)


def _bounded_rows(engine: Any, query: Any, *, source: str, policy: SourcePolicy) -> list[tuple[str, str]]:
    """The query's rows, fetched in batches and refused once their text passes ``max_bytes``."""
    rows: list[tuple[str, str]] = []
    total = 0
    with engine.connect() as conn:
        result = conn.execution_options(stream_results=True).execute(query)
        while batch := result.fetchmany(5000):
            total += sum(len(str(label or "")) + len(str(text or "")) for label, text in batch)
            if total > policy.max_bytes:
                raise SourceRefused(f"{source}: more than data_max_bytes={policy.max_bytes:,} bytes of rows; "
                                    "refused")
            rows.extend((label, text) for label, text in batch)
    return rows


# ------------------------------------------------------------------------------------------ parsing
def parse_tsv(raw: bytes, *, source: str) -> pd.DataFrame:
    """Parse ``label<TAB>text`` lines; every malformed line is reported with its number."""
    text = _decode(raw, source=source)
    labels: list[str] = []
    texts: list[str] = []
    numbers: list[int] = []
    problems: list[tuple[str, str]] = []
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_CHARS:
            problems.append((f"line {number}: {len(line):,} characters long (limit {MAX_LINE_CHARS:,})", ""))
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            found = "no tab" if len(fields) == 1 else f"{len(fields)} tab-separated fields"
            problems.append((f"line {number}: expected 'label<TAB>text' (2 fields), found {found}", _snippet(line)))
            continue
        if number == 1 and [f.strip().lower() for f in fields] == ["label", "text"]:
            continue  # optional header
        labels.append(fields[0].strip())
        texts.append(fields[1])
        numbers.append(number)
    _raise_problems(problems, source=source, rows=len(labels))
    if not labels:
        raise DataSourceError(f"{source}: no data rows (only a header); expected 'label<TAB>text' lines")
    return pd.DataFrame({"label": labels, "text": texts, "line": numbers})


def parse_csv(raw: bytes, *, source: str, text_column: str, label_column: str) -> pd.DataFrame:
    """Parse a CSV with a header naming ``label_column`` and ``text_column``."""
    reader = csv.DictReader(io.StringIO(_decode(raw, source=source), newline=""))
    header = reader.fieldnames or []
    missing = [c for c in (label_column, text_column) if c not in header]
    if missing:  # the header of a file that is not this dataset is not quoted (it may be anything)
        raise DataSourceError(f"{source}: the CSV header ({len(header)} column(s)) lacks column(s) {missing}; "
                              "check the settings label_column/text_column")
    labels: list[str] = []
    texts: list[str] = []
    numbers: list[int] = []
    problems: list[tuple[str, str]] = []
    try:
        for row in reader:
            if None in row:  # more fields than the header
                problems.append((f"line {reader.line_num}: more fields than the header's {len(header)}", ""))
                continue
            labels.append((row[label_column] or "").strip())
            texts.append(row[text_column] or "")
            numbers.append(reader.line_num)
    except csv.Error as err:  # e.g. a field over csv.field_size_limit(); the rest cannot be parsed
        # DictReader.line_num is only updated after a good row; the inner reader's is current
        raise DataSourceError(f"{source}: line {reader.reader.line_num}: malformed CSV: {err}") from err
    _raise_problems(problems, source=source, rows=len(labels))
    if not labels:
        raise DataSourceError(f"{source}: no data rows after the CSV header")
    return pd.DataFrame({"label": labels, "text": texts, "line": numbers})


def _decode(raw: bytes, *, source: str) -> str:
    if not raw.strip():
        raise DataSourceError(f"{source}: is empty")
    if b"\x00" in raw[:65536]:
        raise DataSourceError(f"{source}: contains NUL bytes; it looks like a binary file, not text")
    raw = raw.removeprefix(codecs.BOM_UTF8)  # so err.start below indexes ``raw`` itself
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataSourceError(f"{source}: line {line}: not valid UTF-8 (byte 0x{raw[err.start]:02x}); "
                              "re-encode the file as UTF-8") from err


def _check_labels(frame: pd.DataFrame, *, labels: Sequence[str], source: str) -> None:
    known = set(labels)
    bad = frame[~frame["label"].isin(known)]
    if len(bad):
        if 2 * len(bad) > len(frame):  # mostly unknown labels: not this dataset, so quote nothing of it
            examples = "lines " + ", ".join(str(n) for n in bad["line"][:MAX_REPORTED_PROBLEMS])
            examples += "; most rows fail: it does not look like a labelled dataset (no value quoted)"
        else:
            examples = ", ".join(f"line {n}: {_snippet(label, 40)!r}" for n, label in
                                 zip(bad["line"][:MAX_REPORTED_PROBLEMS], bad["label"], strict=False))
        raise DataSourceError(f"{source}: {len(bad)} row(s) with an unknown label (expected one of "
                              f"{sorted(known)}): {examples}")


def _raise_problems(problems: Iterable[tuple[str, str]], *, source: str, rows: int) -> None:
    """Raise for malformed lines; quote a (redacted, short) snippet only when most lines are good rows."""
    problems = list(problems)
    if not problems:
        return
    quote = rows >= len(problems)  # a file that is mostly not a dataset (/etc/passwd...) is never echoed
    shown = "; ".join(f"{what}: {snippet!r}" if quote and snippet else what
                      for what, snippet in problems[:MAX_REPORTED_PROBLEMS])
    more = f" (and {len(problems) - MAX_REPORTED_PROBLEMS} more)" if len(problems) > MAX_REPORTED_PROBLEMS else ""
    note = "" if quote else "; it does not look like a label<TAB>text dataset (no line quoted)"
    raise DataSourceError(f"{source}: {len(problems)} malformed line(s): {shown}{more}{note}")


def _snippet(text: str, width: int = SNIPPET_CHARS) -> str:
    """At most ``width`` characters of ``text``, personal data and URL passwords redacted, on one line."""
    text = redact(redact_url(str(text).replace("\r", " ").replace("\n", " ")))
    return text if len(text) <= width else text[: width - 3] + "..."


def redact_uri(uri: str) -> str:
    """The URI with any password (and secret query value) replaced by ``***`` (safe for logs)."""
    return redact_url(uri)
