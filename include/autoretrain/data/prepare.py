"""De-duplicate a labelled dataset and split it, stratified, with a fixed seed and no leakage."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import train_test_split

from autoretrain.data.payloads import DedupSummary

log = logging.getLogger(__name__)


def normalize_text(text: str) -> str:
    """The duplicate key of a message: whitespace collapsed, case folded."""
    return " ".join(str(text).split()).casefold()


@dataclass(frozen=True)
class DedupReport:
    """What de-duplication removed."""

    rows_in: int
    rows_out: int
    duplicates_dropped: int
    conflicting_texts_dropped: int

    def as_dict(self) -> DedupSummary:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out,
                "duplicates_dropped": self.duplicates_dropped,
                "conflicting_texts_dropped": self.conflicting_texts_dropped}


def deduplicate(frame: pd.DataFrame) -> tuple[pd.DataFrame, DedupReport]:
    """Keep the first copy of each normalized text; drop texts that carry two different labels."""
    keys = frame["text"].map(normalize_text)
    labels_per_key = frame.groupby(keys)["label"].nunique()
    conflicting = set(labels_per_key[labels_per_key > 1].index)
    repeat = keys.duplicated(keep="first")
    out = frame[~repeat & ~keys.isin(conflicting)].reset_index(drop=True)
    report = DedupReport(rows_in=len(frame), rows_out=len(out), duplicates_dropped=int(repeat.sum()),
                         conflicting_texts_dropped=len(conflicting))
    if conflicting:
        log.warning("dropped %d text(s) that appear with conflicting labels", len(conflicting))
    log.info("de-duplicated %d -> %d rows", report.rows_in, report.rows_out)
    return out, report


def split(frame: pd.DataFrame, *, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified train/test split of a de-duplicated frame (same seed, same split)."""
    counts = frame["label"].value_counts()
    if len(counts) < 2 or counts.min() < 2:
        raise ValueError(f"cannot stratify: each label needs at least 2 rows, found {counts.to_dict()}")
    train, test = train_test_split(frame, test_size=test_size, stratify=frame["label"], random_state=seed)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def shared_texts(a: pd.DataFrame, b: pd.DataFrame) -> int:
    """How many normalized texts appear in both frames (0 means no leakage)."""
    return len(set(a["text"].map(normalize_text)) & set(b["text"].map(normalize_text)))
