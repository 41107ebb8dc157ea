"""Accumulated labelled feedback as a frame (``label``, ``text``, ``timestamp``): a pluggable input.

A feedback loader is any function ``(settings, *, until) -> DataFrame`` with those three columns
that returns an empty frame when there is nothing. ``until`` is the end of the run's data interval:
rows stamped later belong to the next run, so a retry (or the snapshot step after the checks) sees
exactly the rows that were validated. The default reads ``Settings.feedback_uri``:

* empty (the default): no feedback yet -> empty frame;
* ``.csv`` (local, http(s)://, s3://) with a header naming the label and text columns and,
  optionally, ``timestamp`` (ISO 8601; naive times are UTC);
* any other file: ``label<TAB>text`` lines (no timestamps);
* a SQLAlchemy URL with ``#table`` (no timestamps).

When the prediction service's feedback table exists, point the validation DAG's
``feedback_loader`` at a function of ``autoretrain.serving.prediction_log`` (``"module:function"``).
"""

from __future__ import annotations

import csv
import importlib
import io
from collections.abc import Callable
from datetime import datetime

import pandas as pd

from autoretrain.config import Settings, SettingsError
from autoretrain.config import redact_url as redact_uri
from autoretrain.data.sources import DataSourceError, SourcePolicy, _decode, parse_tsv, read_bytes, read_sql_table

FeedbackLoader = Callable[..., pd.DataFrame]  # (settings: Settings, *, until: datetime) -> frame
DEFAULT_LOADER = "autoretrain.data.feedback:load_feedback"
COLUMNS = ("label", "text", "timestamp")


def empty_feedback() -> pd.DataFrame:
    """No feedback: the three columns, no rows."""
    return pd.DataFrame({"label": pd.Series(dtype=str), "text": pd.Series(dtype=str),
                         "timestamp": pd.Series(dtype="datetime64[ns, UTC]")})


def load_feedback(settings: Settings, *, until: datetime) -> pd.DataFrame:
    """The feedback behind ``settings.feedback_uri`` stamped up to ``until`` (empty frame when unset)."""
    uri = settings.feedback_uri.strip()
    if not uri:
        return empty_feedback()
    location = uri if "://" in uri else str(settings.resolve_path(uri))
    policy = SourcePolicy.from_settings(settings)  # the same allowed roots, hosts, tables and cap as data_uri
    shown = redact_uri(uri)
    if "://" in uri and "#" in uri and not uri.startswith(("http://", "https://", "s3://", "file://")):
        frame = read_sql_table(uri, text_column=settings.text_column, label_column=settings.label_column,
                               policy=policy)
    elif uri.lower().split("?")[0].endswith(".csv"):
        frame = _parse_feedback_csv(read_bytes(location, policy=policy), source=shown, settings=settings)
    else:
        frame = parse_tsv(read_bytes(location, policy=policy), source=shown)
    frame = _normalize(frame)
    cutoff = pd.Timestamp(until)
    cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff.tz_convert("UTC")
    return frame[~(frame["timestamp"] > cutoff)].reset_index(drop=True)


def _parse_feedback_csv(raw: bytes, *, source: str, settings: Settings) -> pd.DataFrame:
    reader = csv.DictReader(io.StringIO(_decode(raw, source=source), newline=""))
    header = reader.fieldnames or []
    missing = [c for c in (settings.label_column, settings.text_column) if c not in header]
    if missing:
        raise DataSourceError(f"{source}: the feedback CSV header ({len(header)} column(s)) lacks column(s) "
                              f"{missing}; check the settings label_column/text_column")
    rows = []
    try:
        for row in reader:
            rows.append({"label": (row[settings.label_column] or "").strip(),
                         "text": row[settings.text_column] or "",
                         "timestamp": row.get("timestamp") or None, "line": reader.line_num})
    except csv.Error as err:
        raise DataSourceError(f"{source}: line {reader.reader.line_num}: malformed CSV: {err}") from err
    frame = pd.DataFrame(rows, columns=["label", "text", "timestamp", "line"])
    stamps = pd.to_datetime(frame["timestamp"], utc=True, errors="coerce", format="ISO8601")
    bad = frame["timestamp"].notna() & stamps.isna()
    if bad.any():
        lines = ", ".join(str(n) for n in frame.loc[bad, "line"].head(5))
        raise DataSourceError(f"{source}: line(s) {lines}: timestamp is not ISO 8601 "
                              "(e.g. 2026-01-05T08:00:00Z)")
    frame["timestamp"] = stamps
    return frame


def _normalize(frame: pd.DataFrame) -> pd.DataFrame:
    if "timestamp" not in frame.columns:
        frame = frame.assign(timestamp=pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]"))
    return frame[list(COLUMNS)].reset_index(drop=True)


def resolve_loader(spec: str | FeedbackLoader | None) -> FeedbackLoader:
    """A loader from ``"package.module:function"`` (or the function itself; None: the default)."""
    if callable(spec):
        return spec
    spec = spec or DEFAULT_LOADER
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise SettingsError(f"feedback loader {spec!r}: expected 'package.module:function'")
    try:
        loader = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise SettingsError(f"feedback loader {spec!r} cannot be imported: {err}") from err
    if not callable(loader):
        raise SettingsError(f"feedback loader {spec!r} is not a function")
    return loader
