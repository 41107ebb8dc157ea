"""TF-IDF features on the ``text`` column: word 1-2-grams plus character 2-5-grams."""

from __future__ import annotations

from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer


def build_features(*, text_column: str = "text", word_ngrams: tuple[int, int] = (1, 2),
                   char_ngrams: tuple[int, int] = (2, 5), char_min_df: int = 2) -> ColumnTransformer:
    """A ColumnTransformer that turns the ``text`` column of a DataFrame into TF-IDF features.

    Selecting the column by name (a string, not a list) hands each vectorizer a 1-D series, so the
    fitted pipeline accepts a DataFrame and scores every row (pyfunc/serving contract).
    Word n-grams catch campaign vocabulary; ``char_wb`` n-grams catch obfuscations ("fr33", "£1000").
    """
    word = TfidfVectorizer(ngram_range=word_ngrams, sublinear_tf=True, lowercase=True,
                           token_pattern=r"(?u)\b\w+\b")
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=char_ngrams, sublinear_tf=True,
                           min_df=char_min_df, lowercase=True)
    return ColumnTransformer([("word", word, text_column), ("char", char, text_column)],
                             sparse_threshold=1.0)
