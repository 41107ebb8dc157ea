"""Data sources: parsing good files, naming every problem of bad ones, SQL tables, digests."""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from autoretrain.data import sources
from autoretrain.data.sources import DataSourceError, frame_digest, read_dataset, read_texts, redact_uri

LABELS = ("ham", "spam")


def _file(tmp_path: Path, content: bytes, name: str = "data.tsv") -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


# ------------------------------------------------------------------------------------ good input
@pytest.mark.parametrize("header", [b"", b"label\ttext\n", b"Label\tText\n", b"\xef\xbb\xbflabel\ttext\n"])
def test_tsv_with_optional_header(tmp_path: Path, header: bytes) -> None:
    content = header + "ham\tSee you at 5 \u263a\n\nspam\tWIN \u00a31000 now!\r\nham\t  spaced  \n".encode()
    ds = read_dataset(_file(tmp_path, content), labels=LABELS)
    assert list(ds.frame.columns) == ["label", "text"]
    assert ds.frame.to_dict("list") == {"label": ["ham", "spam", "ham"],
                                        "text": ["See you at 5 \u263a", "WIN \u00a31000 now!", "  spaced  "]}
    assert len(ds) == 3
    assert list(ds.frame.index) == [0, 1, 2]
    assert ds.digest == frame_digest(ds.frame)


def test_tsv_label_whitespace_is_stripped(tmp_path: Path) -> None:
    ds = read_dataset(_file(tmp_path, b" ham \thello\n"), labels=LABELS)
    assert ds.frame.loc[0, "label"] == "ham"


def test_file_uri(tmp_path: Path) -> None:
    path = _file(tmp_path, b"spam\tfree\n")
    ds = read_dataset(f"file://{path}", labels=LABELS)
    assert ds.frame.to_dict("list") == {"label": ["spam"], "text": ["free"]}
    assert ds.source == f"file://{path}"


def test_csv_with_header_in_any_order_and_quoting(tmp_path: Path) -> None:
    content = b'id,text,label\n1,"Hello, world",ham\n2,"Call ""now""\nfor a prize",spam\n'
    ds = read_dataset(_file(tmp_path, content, "data.csv"), labels=LABELS)
    assert ds.frame.to_dict("list") == {"label": ["ham", "spam"],
                                        "text": ["Hello, world", 'Call "now"\nfor a prize']}


def test_csv_custom_column_names(tmp_path: Path) -> None:
    content = b"category,body\nspam,Free entry\nham,ok\n"
    ds = read_dataset(_file(tmp_path, content, "DATA.CSV"), labels=LABELS, text_column="body",
                      label_column="category")
    assert ds.frame.to_dict("list") == {"label": ["spam", "ham"], "text": ["Free entry", "ok"]}


def test_bundled_corpus_reads() -> None:
    ds = read_dataset(str(Path(__file__).resolve().parents[3] / "data/sms_spam_collection/SMSSpamCollection"),
                      labels=LABELS)
    assert len(ds) == 5574
    assert ds.frame["label"].value_counts().to_dict() == {"ham": 4827, "spam": 747}


# ------------------------------------------------------------------------------------- bad input
TEN_MB = b"x" * 10_000_000

BAD_INPUTS = {
    "empty": (b"", "data.tsv", ["data.tsv: is empty"]),
    "only-whitespace": (b" \n\n\t\n", "data.tsv", ["data.tsv: is empty"]),
    "header-only": (b"label\ttext\n", "data.tsv", ["data.tsv: no data rows (only a header)"]),
    "missing-tab": (b"ham\thello\nspam no tab here\nham\tbye\n", "data.tsv",
                    ["data.tsv: 1 malformed line(s)",
                     "line 2: expected 'label<TAB>text' (2 fields), found no tab: 'spam no tab here'"]),
    "extra-columns": (b"ham\thello\nham\tbye\nspam\ta\tb\n", "data.tsv",
                      ["1 malformed line(s)", "line 3: expected 'label<TAB>text' (2 fields), "
                       "found 3 tab-separated fields: 'spam\\ta\\tb'"]),
    "unknown-labels": (b"ham\tx\nSPAM?\ty\nham\tz\neggs\tw\n", "data.tsv",
                       ["data.tsv: 2 row(s) with an unknown label (expected one of ['ham', 'spam']): "
                        "line 2: 'SPAM?', line 4: 'eggs'"]),
    "header-not-first": (b"ham\tx\nlabel\ttext\n", "data.tsv",
                         ["1 row(s) with an unknown label", "line 2: 'label'"]),
    "non-utf8": (b"ham\tok\nham\tfine\nspam\tcaf\xe9 cr\xe8me\n", "data.tsv",
                 ["data.tsv: line 3: not valid UTF-8 (byte 0xe9); re-encode the file as UTF-8"]),
    "non-utf8-after-bom": (b"\xef\xbb\xbfham\tx\nham\ty\n\xffham\tz\n", "data.tsv",
                           ["data.tsv: line 3: not valid UTF-8 (byte 0xff)"]),
    "binary-with-nul": (bytes(range(256)) * 8, "data.tsv",
                        ["data.tsv: contains NUL bytes; it looks like a binary file"]),
    "ten-mb-line": (b"ham\tok\nspam\t" + TEN_MB + b"\nham\tfine\n", "data.tsv",
                    ["1 malformed line(s)", "line 2: 10,000,005 characters long (limit 100,000)"]),
    "many-problems": (b"ham\tok\n" + b"no tab\n" * 7, "data.tsv",
                      ["7 malformed line(s)", "line 2:", "line 6:", "(and 2 more)"]),
    "csv-missing-column": (b"label,body\nham,hi\n", "data.csv",
                           ["data.csv: the CSV header (2 column(s)) lacks column(s) ['text']; "
                            "check the settings label_column/text_column"]),
    "csv-header-only": (b"label,text\n", "data.csv", ["data.csv: no data rows after the CSV header"]),
    "csv-extra-fields": (b"label,text\nham,hi\nspam,win,now\n", "data.csv",
                         ["data.csv: 1 malformed line(s): line 3: more fields than the header's 2"]),
    "csv-ten-mb-field": (b"label,text\nham,ok\nham," + TEN_MB + b"\n", "data.csv",
                         ["data.csv: line 3: malformed CSV: field larger than field limit"]),
    "csv-unknown-label": (b"label,text\nham,hi\nsp4m,win\n", "data.csv",
                          ["1 row(s) with an unknown label", "line 3: 'sp4m'"]),
}


@pytest.mark.parametrize(("content", "name", "expected"), list(BAD_INPUTS.values()), ids=list(BAD_INPUTS))
def test_bad_input_is_reported_with_problem_and_line(tmp_path: Path, content: bytes, name: str,
                                                     expected: list[str]) -> None:
    uri = _file(tmp_path, content, name)
    with pytest.raises(DataSourceError) as info:
        read_dataset(uri, labels=LABELS)
    message = str(info.value)
    assert message.startswith(uri)
    for part in expected:
        assert part in message
    assert len(message) < 2_000  # a 10 MB line is never echoed back


def test_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "missing.tsv"
    with pytest.raises(DataSourceError, match="file not found") as info:
        read_dataset(str(missing), labels=LABELS)
    assert str(info.value) == f"{missing}: file not found (check data_uri)"
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError) as info:
        read_dataset(str(tmp_path), labels=LABELS)
    assert str(info.value) == f"{tmp_path}: is a directory, expected a file"


def test_unsupported_scheme_in_read_bytes() -> None:
    with pytest.raises(DataSourceError, match="unsupported scheme 'ftp'"):
        sources.read_bytes("ftp://example.org/x.tsv")


def test_s3_uri_without_key() -> None:
    with pytest.raises(DataSourceError, match=r"s3://bucket-only: expected s3://bucket/key"):
        sources.read_bytes("s3://bucket-only")


# ------------------------------------------------------------------------------------ read_texts
def test_read_texts_plain_and_labelled_lines(tmp_path: Path) -> None:
    uri = _file(tmp_path, b"hello there\n\nspam\tWIN now\tor never\n  \nham\tok\n", "texts.txt")
    assert read_texts(uri) == ["hello there", "WIN now\tor never", "ok"]


def test_read_texts_nothing_but_blank_unicode(tmp_path: Path) -> None:
    uri = _file(tmp_path, "\u00a0\n\u2003\n".encode(), "texts.txt")
    with pytest.raises(DataSourceError, match="no messages found"):
        read_texts(uri)


def test_read_texts_empty(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="is empty"):
        read_texts(_file(tmp_path, b""))


# ------------------------------------------------------------------------------------ digests
def _frame(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["label", "text"])


def test_frame_digest_format_is_pinned() -> None:
    frame = _frame([("ham", "hello"), ("spam", "WIN")])
    assert frame_digest(frame) == hashlib.sha256(b'["ham", "hello"]\n["spam", "WIN"]\n').hexdigest()


def test_frame_digest_is_stable_and_ignores_index_and_extra_columns() -> None:
    frame = _frame([("ham", "hello"), ("spam", "WIN")])
    other = frame.copy()
    other.index = [10, 3]
    other["extra"] = [1, 2]
    assert frame_digest(frame) == frame_digest(frame) == frame_digest(other)


@pytest.mark.parametrize("rows", [
    [("spam", "WIN"), ("ham", "hello")],   # order
    [("ham", "hello"), ("ham", "WIN")],    # a label
    [("ham", "hello"), ("spam", "WIN!")],  # a text
    [("ham", "hello")],                    # a row fewer
])
def test_frame_digest_changes_with_content_and_order(rows: list[tuple[str, str]]) -> None:
    assert frame_digest(_frame(rows)) != frame_digest(_frame([("ham", "hello"), ("spam", "WIN")]))


def test_same_content_from_tsv_and_csv_has_same_digest(tmp_path: Path) -> None:
    tsv = read_dataset(_file(tmp_path, b"ham\thi\nspam\twin\n"), labels=LABELS)
    csv = read_dataset(_file(tmp_path, b"label,text\nham,hi\nspam,win\n", "d.csv"), labels=LABELS)
    assert tsv.digest == csv.digest


# ------------------------------------------------------------------------------------ redact_uri
@pytest.mark.parametrize(("uri", "expected"), [
    ("postgresql://user:s3cret@db:5432/x#t", "postgresql://user:***@db:5432/x#t"),
    ("postgresql+psycopg2://u:p%40ss@h/db#t", "postgresql+psycopg2://u:***@h/db#t"),
    ("https://alice:tok3n@example.org/data.tsv", "https://alice:***@example.org/data.tsv"),
    ("postgresql://user@db/x#t", "postgresql://user@db/x#t"),
    ("s3://bucket/key.tsv", "s3://bucket/key.tsv"),
    ("/data/file.tsv", "/data/file.tsv"),
])
def test_redact_uri(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected


# ------------------------------------------------------------------------------------ SQL (sqlite)
@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "messages.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, label TEXT, text TEXT)")
        conn.executemany("INSERT INTO messages (label, text) VALUES (?, ?)",
                         [("ham", "see you"), ("spam", "WIN cash"), ("ham", None)])
        conn.execute("CREATE TABLE other (category TEXT, body TEXT)")
        conn.execute("INSERT INTO other VALUES ('spam', 'free'), ('eggs', 'x'), ('ham', 'y'), ('bacon', 'z')")
        conn.execute("CREATE TABLE empty (label TEXT, text TEXT)")
    conn.close()
    return path


@pytest.fixture(autouse=True)
def sql_policy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQL tests read the SQLite file they made: it is the policy's configured database, its tables allowed."""
    if "sqlite_db" not in request.fixturenames:
        return
    db = request.getfixturevalue("sqlite_db")
    policy = dataclasses.replace(sources.default_policy(), database_url=f"sqlite:///{db}",
                                 tables=("messages", "other", "empty", "nope"))
    monkeypatch.setattr(sources, "default_policy", lambda: policy)


def test_sql_table(sqlite_db: Path) -> None:
    ds = read_dataset(f"sqlite:///{sqlite_db}#messages", labels=LABELS)
    assert ds.frame.to_dict("list") == {"label": ["ham", "spam", "ham"], "text": ["see you", "WIN cash", ""]}
    assert ds.digest == frame_digest(ds.frame)


def test_sql_custom_columns(sqlite_db: Path) -> None:
    frame = sources.read_sql_table(f"sqlite:///{sqlite_db}#other", text_column="body",
                                   label_column="category")
    assert frame["text"].tolist() == ["free", "x", "y", "z"]


def test_sql_unknown_labels_report_row_numbers(sqlite_db: Path) -> None:
    with pytest.raises(DataSourceError) as info:
        read_dataset(f"sqlite:///{sqlite_db}#other", labels=LABELS, text_column="body",
                     label_column="category")
    assert str(info.value) == (f"sqlite:///{sqlite_db}#other: 2 row(s) with an unknown label "
                               "(expected one of ['ham', 'spam']): line 2: 'eggs', line 4: 'bacon'")


def test_sql_missing_table(sqlite_db: Path) -> None:
    with pytest.raises(DataSourceError) as info:
        read_dataset(f"sqlite:///{sqlite_db}#nope", labels=LABELS)
    assert str(info.value) == f"sqlite:///{sqlite_db}#nope: cannot read table 'nope': no such table: nope"


def test_sql_missing_column(sqlite_db: Path) -> None:
    with pytest.raises(DataSourceError, match=r"cannot read table 'other': no such column: label"):
        read_dataset(f"sqlite:///{sqlite_db}#other", labels=LABELS)


def test_sql_empty_table(sqlite_db: Path) -> None:
    with pytest.raises(DataSourceError, match=r"table 'empty' has no rows"):
        read_dataset(f"sqlite:///{sqlite_db}#empty", labels=LABELS)


@pytest.mark.parametrize(("fragment", "found"), [
    ("", "''"), ("#", "''"), ("#messages;DROP TABLE x", "'messages;DROP TABLE x'"), ("#1table", "'1table'"),
])
def test_sql_needs_a_plain_table_name(sqlite_db: Path, fragment: str, found: str) -> None:
    with pytest.raises(DataSourceError, match="a SQL source needs a table name after '#'") as info:
        read_dataset(f"sqlite:///{sqlite_db}{fragment}", labels=LABELS)
    assert f"(found {found})" in str(info.value)


def test_sql_rejects_non_identifier_columns(sqlite_db: Path) -> None:
    with pytest.raises(DataSourceError, match=r"column name 'text; DROP' is not a plain SQL identifier"):
        read_dataset(f"sqlite:///{sqlite_db}#messages", labels=LABELS, text_column="text; DROP")


def test_sql_unknown_dialect(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = dataclasses.replace(sources.default_policy(), database_url="nosuchdb://host/db", tables=("messages",))
    monkeypatch.setattr(sources, "default_policy", lambda: policy)
    with pytest.raises(DataSourceError, match="not a usable SQLAlchemy URL"):
        read_dataset("nosuchdb://host/db#messages", labels=LABELS)


def test_frame_digest_does_not_collide_on_embedded_separators():
    one = pd.DataFrame({"label": ["ham"], "text": ["a\nspam\tb"]})
    two = pd.DataFrame({"label": ["ham", "spam"], "text": ["a", "b"]})
    assert frame_digest(one) != frame_digest(two)
