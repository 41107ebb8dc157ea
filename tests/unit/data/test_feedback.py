"""The pluggable feedback input: the default CSV/TSV loader and loader resolution."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from autoretrain.config import Settings
from autoretrain.data.feedback import empty_feedback, load_feedback, resolve_loader
from autoretrain.data.sources import DataSourceError

UNTIL = datetime(2026, 3, 2, 8, tzinfo=UTC)


def test_no_feedback_configured_is_an_empty_frame():
    frame = load_feedback(Settings(), until=UNTIL)
    assert list(frame.columns) == ["label", "text", "timestamp"] and len(frame) == 0
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert empty_feedback().equals(frame)


def test_csv_feedback_up_to_the_data_interval_end(tmp_path):
    path = tmp_path / "feedback.csv"
    path.write_text("label,text,timestamp,user\n"
                    "spam,free prize,2026-03-01T10:00:00Z,u1\n"
                    "ham,\"lunch, then?\",2026-03-02 08:00:00,u2\n"  # naive: UTC; == until: included
                    "ham,too late,2026-03-02T08:00:01Z,u3\n"
                    "ham,no stamp,,u4\n", encoding="utf-8")
    frame = load_feedback(Settings(feedback_uri=str(path)), until=UNTIL)
    assert frame["text"].tolist() == ["free prize", "lunch, then?", "no stamp"]
    assert frame["timestamp"].tolist()[:2] == [pd.Timestamp("2026-03-01T10:00:00Z"),
                                               pd.Timestamp("2026-03-02T08:00:00Z")]
    assert pd.isna(frame["timestamp"].iloc[2])


def test_bad_timestamp_and_missing_column_name_the_problem(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("label,text,timestamp\nham,a,2026-03-01\nham,b,last tuesday\n", encoding="utf-8")
    with pytest.raises(DataSourceError, match=r"line\(s\) 3: timestamp is not ISO 8601"):
        load_feedback(Settings(feedback_uri=str(bad)), until=UNTIL)
    bare = tmp_path / "bare.csv"
    bare.write_text("message\nhello\n", encoding="utf-8")
    with pytest.raises(DataSourceError, match=r"lacks column\(s\) \['label', 'text'\]"):
        load_feedback(Settings(feedback_uri=str(bare)), until=UNTIL)


def test_tsv_feedback_has_no_timestamps(tmp_path):
    path = tmp_path / "feedback.tsv"
    path.write_text("spam\tcall now\nham\tok\n", encoding="utf-8")
    frame = load_feedback(Settings(feedback_uri=str(path)), until=UNTIL)
    assert frame[["label", "text"]].values.tolist() == [["spam", "call now"], ["ham", "ok"]]
    assert frame["timestamp"].isna().all()


def test_resolve_loader():
    assert resolve_loader(None) is load_feedback
    assert resolve_loader("autoretrain.data.feedback:empty_feedback") is empty_feedback
    assert resolve_loader(load_feedback) is load_feedback
    with pytest.raises(ValueError, match="expected 'package.module:function'"):
        resolve_loader("autoretrain.data.feedback")
    with pytest.raises(ValueError, match="cannot be imported"):
        resolve_loader("autoretrain.nowhere:load")
    with pytest.raises(ValueError, match="is not a function"):
        resolve_loader("autoretrain.data.feedback:COLUMNS")
