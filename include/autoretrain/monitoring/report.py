"""Evidently's data-drift report of a window, saved as one self-contained HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Any


# ------------------------------------------------------------------------------ Evidently report
def evidently_report_html(reference_df: Any, window_df: Any, path: str | Path, *, text_column: str = "text",
                          score_column: str = "score") -> Path:
    """Evidently's DataDriftPreset on the text and score columns, saved as one self-contained HTML file.

    Evidently is imported here, not at module level: the import alone takes seconds.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    for name, frame in (("reference_df", reference_df), ("window_df", window_df)):
        if text_column not in frame.columns:
            raise ValueError(f"{name} has no {text_column!r} column (columns: {list(frame.columns)})")
    has_score = score_column in reference_df.columns and score_column in window_df.columns
    columns = [text_column, score_column] if has_score else [text_column]
    definition = DataDefinition(text_columns=[text_column], numerical_columns=[score_column] if has_score else [])
    snapshot = Report([DataDriftPreset(columns=columns)]).run(
        Dataset.from_pandas(window_df[columns].reset_index(drop=True), data_definition=definition),
        Dataset.from_pandas(reference_df[columns].reset_index(drop=True), data_definition=definition))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path
