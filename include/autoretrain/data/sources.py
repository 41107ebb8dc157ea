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
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import logging
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from autoretrain.errors import AutoRetrainError

log = logging.getLogger(__name__)

FILE_SCHEMES = ("", "file", "http", "https", "s3")
MAX_LINE_CHARS = 100_000
MAX_REPORTED_PROBLEMS = 5
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class DataSourceError(AutoRetrainError, ValueError):
    """A dataset could not be read, or its content does not have the expected shape."""


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
                 label_column: str = "label") -> Dataset:
    """Read a labelled dataset from ``uri``; raise :class:`DataSourceError` naming any problem."""
    scheme = urlparse(uri).scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter, not a scheme
        scheme = ""
    shown = redact_uri(uri)  # error messages end up in task logs and alerts: no passwords
    if scheme in FILE_SCHEMES:
        raw = read_bytes(uri)
        if uri.lower().split("?")[0].endswith(".csv"):
            frame = parse_csv(raw, source=shown, text_column=text_column, label_column=label_column)
        else:
            frame = parse_tsv(raw, source=shown)
    else:
        frame = read_sql_table(uri, text_column=text_column, label_column=label_column)
    _check_labels(frame, labels=labels, source=shown)
    frame = frame.drop(columns="line").reset_index(drop=True)
    log.info("read %d rows from %s", len(frame), redact_uri(uri))
    return Dataset(frame=frame, source=uri, digest=frame_digest(frame))


def read_texts(uri: str) -> list[str]:
    """Read unlabelled messages: ``text`` per line, or ``label<TAB>text`` (the label is dropped)."""
    text = _decode(read_bytes(uri), source=uri)
    out = []
    for line in text.splitlines():
        if line.strip():
            out.append(line.split("\t", 1)[1] if "\t" in line else line)
    if not out:
        raise DataSourceError(f"{uri}: no messages found (expected one message per line)")
    return out


# ---------------------------------------------------------------------------------------- transport
def read_bytes(uri: str) -> bytes:
    """The raw bytes behind a local path, ``file://``, ``http(s)://`` or ``s3://`` URI."""
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower() if len(parsed.scheme) > 1 else ""
    if scheme in ("", "file"):
        path = Path(unquote(parsed.path) if scheme == "file" else uri)
        try:
            return path.read_bytes()
        except FileNotFoundError as err:
            raise DataSourceError(f"{path}: file not found (check data_uri)") from err
        except IsADirectoryError as err:
            raise DataSourceError(f"{path}: is a directory, expected a file") from err
        except OSError as err:
            raise DataSourceError(f"{path}: cannot be read: {err.strerror}") from err
    if scheme in ("http", "https"):
        return _read_http(uri)
    if scheme == "s3":
        return _read_s3(parsed.netloc, parsed.path.lstrip("/"), uri)
    raise DataSourceError(f"{uri}: unsupported scheme {scheme!r}; use a path, file://, http(s)://, s3:// "
                          "or a SQLAlchemy URL with #table")


def _read_http(uri: str, timeout: float = 30.0) -> bytes:
    try:
        with urllib.request.urlopen(uri, timeout=timeout) as response:  # noqa: S310 (scheme checked)
            return response.read()
    except urllib.error.HTTPError as err:
        raise DataSourceError(f"{redact_uri(uri)}: HTTP {err.code} {err.reason}") from err
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DataSourceError(f"{redact_uri(uri)}: cannot be fetched: {reason}") from err


def _read_s3(bucket: str, key: str, uri: str) -> bytes:
    import boto3
    import botocore.exceptions

    if not bucket or not key:
        raise DataSourceError(f"{uri}: expected s3://bucket/key")
    try:
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"]
        return body.read()
    except botocore.exceptions.ClientError as err:
        code = err.response.get("Error", {}).get("Code", "?")
        raise DataSourceError(f"{uri}: S3 error {code}: {err}") from err
    except botocore.exceptions.BotoCoreError as err:
        raise DataSourceError(f"{uri}: S3 is unreachable or misconfigured: {err}") from err


def read_sql_table(uri: str, *, text_column: str, label_column: str) -> pd.DataFrame:
    """Read ``label`` and ``text`` from the table named in the URI's fragment (``url#table``)."""
    import sqlalchemy as sa

    url, _, table = uri.partition("#")
    if not table or not _IDENTIFIER.match(table):
        raise DataSourceError(f"{redact_uri(uri)}: a SQL source needs a table name after '#', "
                              f"e.g. postgresql://host/db#messages (found {table!r})")
    for column in (text_column, label_column):
        if not _IDENTIFIER.match(column):
            raise DataSourceError(f"column name {column!r} is not a plain SQL identifier")
    query = sa.text(f"SELECT {label_column} AS label, {text_column} AS text FROM {table}")
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as err:
        raise DataSourceError(f"{redact_uri(uri)}: not a usable SQLAlchemy URL: {err}") from err
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    except sa.exc.SQLAlchemyError as err:
        raise DataSourceError(f"{redact_uri(uri)}: cannot read table {table!r}: "
                              f"{str(err.orig if hasattr(err, 'orig') else err).strip()}") from err
    finally:
        engine.dispose()
    frame = pd.DataFrame(rows, columns=["label", "text"])
    frame["line"] = range(1, len(frame) + 1)  # row number in the query result
    frame["label"] = frame["label"].astype(str)
    frame["text"] = frame["text"].fillna("").astype(str)
    if frame.empty:
        raise DataSourceError(f"{redact_uri(uri)}: table {table!r} has no rows")
    return frame


# ------------------------------------------------------------------------------------------ parsing
def parse_tsv(raw: bytes, *, source: str) -> pd.DataFrame:
    """Parse ``label<TAB>text`` lines; every malformed line is reported with its number."""
    text = _decode(raw, source=source)
    labels, texts, numbers, problems = [], [], [], []
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_CHARS:
            problems.append(f"line {number}: {len(line):,} characters long (limit {MAX_LINE_CHARS:,})")
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            found = "no tab" if len(fields) == 1 else f"{len(fields)} tab-separated fields"
            problems.append(f"line {number}: expected 'label<TAB>text' (2 fields), found {found}: "
                            f"{_preview(line)}")
            continue
        if number == 1 and [f.strip().lower() for f in fields] == ["label", "text"]:
            continue  # optional header
        labels.append(fields[0].strip())
        texts.append(fields[1])
        numbers.append(number)
    _raise_problems(problems, source=source)
    if not labels:
        raise DataSourceError(f"{source}: no data rows (only a header); expected 'label<TAB>text' lines")
    return pd.DataFrame({"label": labels, "text": texts, "line": numbers})


def parse_csv(raw: bytes, *, source: str, text_column: str, label_column: str) -> pd.DataFrame:
    """Parse a CSV with a header naming ``label_column`` and ``text_column``."""
    reader = csv.DictReader(io.StringIO(_decode(raw, source=source), newline=""))
    header = reader.fieldnames or []
    missing = [c for c in (label_column, text_column) if c not in header]
    if missing:
        raise DataSourceError(f"{source}: CSV header {header} lacks column(s) {missing}")
    labels, texts, numbers, problems = [], [], [], []
    try:
        for row in reader:
            if None in row:  # more fields than the header
                problems.append(f"line {reader.line_num}: more fields than the header's {len(header)}")
                continue
            labels.append((row[label_column] or "").strip())
            texts.append(row[text_column] or "")
            numbers.append(reader.line_num)
    except csv.Error as err:  # e.g. a field over csv.field_size_limit(); the rest cannot be parsed
        # DictReader.line_num is only updated after a good row; the inner reader's is current
        raise DataSourceError(f"{source}: line {reader.reader.line_num}: malformed CSV: {err}") from err
    _raise_problems(problems, source=source)
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
        examples = ", ".join(f"line {n}: {label!r}" for n, label in
                             zip(bad["line"][:MAX_REPORTED_PROBLEMS], bad["label"], strict=False))
        raise DataSourceError(f"{source}: {len(bad)} row(s) with an unknown label (expected one of "
                              f"{sorted(known)}): {examples}")


def _raise_problems(problems: Iterable[str], *, source: str) -> None:
    problems = list(problems)
    if problems:
        shown = "; ".join(problems[:MAX_REPORTED_PROBLEMS])
        more = f" (and {len(problems) - MAX_REPORTED_PROBLEMS} more)" if len(problems) > MAX_REPORTED_PROBLEMS else ""
        raise DataSourceError(f"{source}: {len(problems)} malformed line(s): {shown}{more}")


def _preview(line: str, width: int = 60) -> str:
    return repr(line if len(line) <= width else line[:width] + "...")


def redact_uri(uri: str) -> str:
    """The URI with any password replaced by ``***`` (safe for logs)."""
    parsed = urlparse(uri)
    if parsed.password:
        return uri.replace(f":{parsed.password}@", ":***@", 1)
    return uri
