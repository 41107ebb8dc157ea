"""Vectorized text statistics and two-sample measures for the drift checks: pure numpy/scipy.

Everything here works on whole batches at once, so a window of a million messages costs a few
regex passes and sparse-matrix operations, not a Python loop per message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy import stats

DEFAULT_TOKEN_PATTERN = r"(?u)\b\w+\b"
CHUNK = 100_000
#: character classes of the character-class check (ASCII: SMS text is overwhelmingly ASCII)
CURRENCY = "$£€¥₹₩₽¢"
PUNCTUATION = "!\"#%&'()*+,-./:;<=>?@[\\]^_`{|}~"
CHAR_CLASSES = ("digit", "upper", "punct", "currency", "non_ascii")
_EPS = 1e-4


SENTINEL = "zqxsentinelxqz"  # joins the messages of a chunk; holds id 0 in every TokenIds


class TokenIds(dict[str, int]):
    """token -> column id; unseen tokens get the next id (so ids are stable across batches).

    Id 0 is reserved for the sentinel that separates messages during tokenization.
    """

    def __init__(self, tokens: Sequence[str] = ()) -> None:
        super().__init__()
        self[SENTINEL] = 0
        for token in tokens:
            self[token]  # noqa: B018 - assigns the next id

    def __missing__(self, token: str) -> int:
        self[token] = idx = len(self)
        return idx

    def copy(self) -> TokenIds:
        """An independent copy (new tokens added to it do not reach this one)."""
        out = TokenIds()
        out.update(self)
        return out


@dataclass(frozen=True, eq=False)
class Tokens:
    """Term counts of a batch: a (messages x token ids) CSR matrix and the messages' token totals."""

    counts: sp.csr_matrix
    lengths: np.ndarray  # tokens per message

    @property
    def doc_freq(self) -> np.ndarray:
        """How many messages contain each token id."""
        return np.bincount(self.counts.indices, minlength=self.counts.shape[1])


def compile_token_pattern(pattern: str) -> re.Pattern[str]:
    """The vectorizer's token regex; the default ``\\b\\w+\\b`` is run as the equivalent, faster ``\\w+``."""
    return re.compile(r"\w+" if pattern == DEFAULT_TOKEN_PATTERN else pattern)


def tokenize(texts: Sequence[str], ids: TokenIds, *, pattern: re.Pattern[str], lowercase: bool = True) -> Tokens:
    """Count the tokens of every message (the vectorizer's lowercase + token regex), one pass per chunk.

    The messages of a chunk are joined around a sentinel token, tokenized by one ``findall`` and
    split back at the sentinels: the same tokens as the vectorizer's per-message loop, much faster.
    """
    rows, cols = [], []
    for start in range(0, len(texts), CHUNK):
        chunk = list(texts[start:start + CHUNK])
        joined = f" {SENTINEL} ".join(chunk)
        col = _ids(pattern.findall(joined.lower() if lowercase else joined), ids)
        is_sep = col == 0
        if np.count_nonzero(is_sep) != len(chunk) - 1:  # a message holds the sentinel: go one by one
            found = [f[f != 0] for f in (_ids(pattern.findall(t.lower() if lowercase else t), ids) for t in chunk)]
            row = np.repeat(np.arange(len(chunk)), [len(f) for f in found])
            col = np.concatenate(found) if found else np.zeros(0, dtype=np.int64)
        else:
            row, col = np.cumsum(is_sep)[~is_sep], col[~is_sep]
        rows.append(row + start)
        cols.append(col)
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    col = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    counts = sp.csr_matrix((np.ones(len(row)), (row, col)), shape=(len(texts), len(ids)))
    counts.sum_duplicates()
    return Tokens(counts=counts, lengths=np.bincount(row, minlength=len(texts)))


def _ids(found: list[str], ids: TokenIds) -> np.ndarray:
    return np.fromiter(map(ids.__getitem__, found), dtype=np.int64, count=len(found))


def _class_table() -> np.ndarray:
    """Bit flags of the character classes for code points 0..255 (255 stands for everything above)."""
    table = np.zeros(256, dtype=np.uint8)
    table[ord("0"):ord("9") + 1] |= 1
    table[ord("A"):ord("Z") + 1] |= 2
    table[[ord(c) for c in PUNCTUATION]] |= 4
    table[[ord(c) for c in CURRENCY if ord(c) < 255]] |= 8
    table[128:] |= 16
    return table


_CLASS_TABLE = _class_table()
_WIDE_CURRENCY = [ord(c) for c in CURRENCY if ord(c) >= 255]


def char_features(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """Per message: ``length`` in characters and the share of each character class (vectorized)."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    counts = {c: np.zeros(len(texts)) for c in CHAR_CLASSES}
    for start in range(0, len(texts), CHUNK):
        chunk = texts[start:start + CHUNK]
        code = np.frombuffer("".join(chunk).encode("utf-32-le"), dtype=np.uint32)
        flags = _CLASS_TABLE[np.minimum(code, 255)]
        for wide in _WIDE_CURRENCY:
            flags[code == wide] |= 8
        flags = np.append(flags, np.uint8(0))  # so that empty messages at the end stay in bounds
        size = lengths[start:start + len(chunk)]
        starts = np.concatenate([[0], np.cumsum(size)[:-1]])
        for bit, name in enumerate(CHAR_CLASSES):
            per_message = np.add.reduceat((flags & (1 << bit)) > 0, starts, dtype=np.int64)
            counts[name][start:start + len(chunk)] = np.where(size > 0, per_message, 0)
    denominator = np.maximum(lengths, 1)
    return {"length": lengths.astype(float)} | {name: counts[name] / denominator for name in CHAR_CLASSES}


# ------------------------------------------------------------------------- two-sample statistics
def quantile_edges(reference: np.ndarray, bins: int = 10) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (duplicates merged, so ties form their own bin)."""
    return np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))


def psi(reference: np.ndarray, current: np.ndarray, *, weights: np.ndarray | None = None,
        bins: int = 10) -> tuple[float, int]:
    """Population stability index over reference-quantile bins, and the number of bins used.

    PSI = sum (c - r) * ln(c / r); empty bins get a small share (1e-4) instead of zero.
    ``weights`` are the multiplicities of the ``current`` values.
    """
    edges = quantile_edges(reference, bins)
    n_bins = len(edges) + 1
    r = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=n_bins) / len(reference)
    c = np.bincount(np.searchsorted(edges, current, side="right"), weights=weights, minlength=n_bins)
    c = c / c.sum()
    r, c = np.maximum(r, _EPS), np.maximum(c, _EPS)
    return float(np.sum((c - r) * np.log(c / r))), n_bins


def psi_noise_floor(n_reference: int, n_current: int, n_bins: int, *, alpha: float) -> float:
    """The PSI that sampling noise alone exceeds with probability ``alpha``.

    For two samples of one distribution, PSI x n_eff is approximately chi-square with
    (bins - 1) degrees of freedom, where n_eff = n m / (n + m).
    """
    n_eff = n_reference * n_current / (n_reference + n_current)
    return float(stats.chi2.isf(alpha, max(n_bins - 1, 1)) / n_eff)


def ks_critical_value(n_reference: int, n_current: int, *, alpha: float) -> float:
    """The two-sample Kolmogorov-Smirnov statistic exceeded by chance with probability ``alpha``."""
    c_alpha = np.sqrt(-0.5 * np.log(alpha / 2))
    return float(c_alpha * np.sqrt((n_reference + n_current) / (n_reference * n_current)))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (0 = same distribution, 1 = disjoint support)."""
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    return float(max((_entropy(m) - (_entropy(p) + _entropy(q)) / 2), 0.0))


def _entropy(p: np.ndarray) -> float:
    nz = p[p > 0]
    return float(-np.sum(nz * np.log2(nz)))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard index of two boolean membership vectors (1.0 when both are empty)."""
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 1.0


def permutation_null(pooled: sp.csr_matrix, n_current: int, statistic: Callable[[np.ndarray, np.ndarray], float],
                     *, rounds: int, rng: np.random.Generator) -> np.ndarray:
    """The statistic over ``rounds`` random splits of the pooled rows into (rest, n_current).

    ``statistic(sum_of_first_group, sum_of_second_group)`` receives the column sums of each group,
    so a round costs one sparse matrix-vector product.
    """
    total = np.asarray(pooled.sum(axis=0)).ravel()
    out = np.empty(rounds)
    for k in range(rounds):
        mask = np.zeros(pooled.shape[0])
        mask[rng.choice(pooled.shape[0], size=n_current, replace=False)] = 1.0
        current = pooled.T @ mask
        out[k] = statistic(total - current, current)
    return out


def ratio_variance(numerator: np.ndarray, denominator: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Sampling variance of sum(numerator) / sum(denominator) over i.i.d. messages (delta method).

    ``weights`` are multiplicities: row i stands for ``weights[i]`` identical messages.
    """
    w = np.ones(len(numerator)) if weights is None else weights
    total = denominator @ w
    if total == 0:
        return 0.0
    ratio = (numerator @ w) / total
    return float(((numerator - ratio * denominator) ** 2) @ w / total ** 2)


def top_items(values: Mapping[str, float], k: int) -> list[tuple[str, float]]:
    """The ``k`` largest entries, largest first (ties by name)."""
    return sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
