"""The challenger's data: the base dataset's split plus labelled traffic from the prediction log.

:func:`assemble` adds feedback rows (``label``, ``text``) to the base training and hold-out
frames. Feedback texts already in the base dataset are dropped (the curated label wins), repeats
are de-duplicated (texts labelled both ways are dropped), and each remaining text goes to the
hold-out when a salted SHA-256 of its normalized form falls below ``test_size``. The side depends
only on the text, so a message used to evaluate one challenger is never trained on by a later
one, and the champion never trained on any message in today's hold-out either.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from autoretrain.data.payloads import FeedbackSummary
from autoretrain.data.prepare import deduplicate, normalize_text

ORIGIN_BASE, ORIGIN_FEEDBACK = "base", "feedback"


@dataclass(frozen=True)
class FeedbackReport:
    """What happened to the feedback rows."""

    rows_in: int
    already_in_base: int
    duplicates_dropped: int
    conflicting_texts_dropped: int
    rows_train: int
    rows_test: int

    def as_dict(self) -> FeedbackSummary:
        return {"rows_in": self.rows_in, "already_in_base": self.already_in_base,
                "duplicates_dropped": self.duplicates_dropped,
                "conflicting_texts_dropped": self.conflicting_texts_dropped, "rows_train": self.rows_train,
                "rows_test": self.rows_test}


def holdout_side(text: str, *, test_size: float, salt: str) -> bool:
    """True when ``text`` belongs to the hold-out: SHA-256(salt, normalized text) below ``test_size``."""
    digest = hashlib.sha256(f"{salt}\x00{normalize_text(text)}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < test_size


def assemble(base_train: pd.DataFrame, base_test: pd.DataFrame, feedback: pd.DataFrame, *, test_size: float,
             salt: str) -> tuple[pd.DataFrame, pd.DataFrame, FeedbackReport]:
    """(train, test, report): base split + feedback split by text hash, with an ``origin`` column."""
    base_keys = set(pd.concat([base_train["text"], base_test["text"]]).map(normalize_text))
    rows = feedback[["label", "text"]].reset_index(drop=True)
    in_base = rows["text"].map(normalize_text).isin(base_keys)
    fresh, dedup = deduplicate(rows[~in_base].reset_index(drop=True))
    to_test = fresh["text"].map(lambda t: holdout_side(t, test_size=test_size, salt=salt)).astype(bool)
    fb_train, fb_test = fresh[~to_test], fresh[to_test]
    train = pd.concat([base_train[["label", "text"]].assign(origin=ORIGIN_BASE),
                       fb_train.assign(origin=ORIGIN_FEEDBACK)], ignore_index=True)
    test = pd.concat([base_test[["label", "text"]].assign(origin=ORIGIN_BASE),
                      fb_test.assign(origin=ORIGIN_FEEDBACK)], ignore_index=True)
    report = FeedbackReport(rows_in=len(rows), already_in_base=int(in_base.sum()),
                            duplicates_dropped=dedup.duplicates_dropped,
                            conflicting_texts_dropped=dedup.conflicting_texts_dropped,
                            rows_train=len(fb_train), rows_test=len(fb_test))
    return train, test, report
