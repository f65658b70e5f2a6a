"""Critical-difference statistics for comparing configurations across many groups.

Seeds are reduced to their median per (method, group), methods are ranked within each group
(1 = best, ties share the average rank), a Friedman test asks whether any method differs at all,
and pairwise Wilcoxon signed-rank tests with Holm's step-down correction decide which pairs are
separable. Methods that cannot be told apart form the cliques drawn as bars in a CD diagram
(see :mod:`imprint.figures.cd_diagram`). Pure functions: tables in, tables and dataclasses out.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from imprint.analysis.cliques import maximal_cliques

__all__ = [
    "CDResult",
    "average_ranks",
    "best_per_value",
    "critical_difference",
    "describe_cliques",
    "describe_friedman",
    "format_p",
    "friedman",
    "holm_correction",
    "pairwise_wilcoxon",
    "score_matrix",
    "wilcoxon_pratt_pvalue",
]


@dataclass(frozen=True)
class CDResult:
    """Everything a CD diagram (or a table of it) needs.

    All method-indexed tables are ordered by average rank, best first.
    """

    ranks: pd.DataFrame
    """Columns ``method`` and ``average_rank``, sorted ascending (1 = best)."""
    rank_matrix: pd.DataFrame
    """Groups x methods: rank of each method within each complete group."""
    pvalues: pd.DataFrame
    """Methods x methods Holm-adjusted Wilcoxon p-values; diagonal 1."""
    raw_pvalues: pd.DataFrame
    """Methods x methods unadjusted Wilcoxon p-values; diagonal 1."""
    friedman_statistic: float
    """Friedman chi-square; NaN when the test was skipped or every group is a full tie."""
    friedman_pvalue: float
    """NaN when the test was skipped (2 methods); 1.0 when every group is a full tie."""
    friedman_significant: bool
    """True only when the Friedman test was run and ``friedman_pvalue < alpha``."""
    alpha: float
    n_groups: int
    """Number of complete groups used."""
    cliques: list[list[str]]
    """Maximal sets (>= 2 members) of mutually not-significantly-different methods."""
    summary: str
    """Plain-language account of the tests, including a non-significant Friedman test."""
    score_matrix: pd.DataFrame
    """Groups x methods median (over seeds) scores the ranks were computed from."""
    significant: pd.DataFrame
    """Methods x methods bool: pair declared different (Holm rejects and Friedman allows)."""
    friedman_tested: bool
    """False when there are only two methods (the Wilcoxon test then decides alone)."""
    n_dropped_groups: int
    """Groups left out because at least one method had no score there."""


# --------------------------------------------------------------------------- data preparation


def score_matrix(
    table: pd.DataFrame,
    method_col: str,
    score_col: str,
    group_cols: str | Sequence[str],
    seed_col: str | None = None,
) -> tuple[pd.DataFrame, int]:
    """Reduce a long table to a complete groups x methods matrix of median scores.

    Returns ``(matrix, n_dropped_groups)``. Method labels become strings (they are drawn as
    text and reported in cliques). Rows with a missing score count as missing.
    """
    group_cols = [group_cols] if isinstance(group_cols, str) else list(group_cols)
    if not group_cols:
        raise ValueError("at least one group column is needed")
    needed = [method_col, score_col, *group_cols] + ([seed_col] if seed_col else [])
    absent = [c for c in needed if c not in table.columns]
    if absent:
        raise ValueError(f"columns not in table: {absent}")
    df, all_methods = _scored_rows(table, needed, method_col, score_col)
    cell = [method_col, *group_cols] + ([seed_col] if seed_col else [])
    _refuse_shared_cells(df, cell, seed_col)
    med = df.groupby([*group_cols, method_col], sort=True, dropna=False)[score_col].median()
    return _complete_groups(med.unstack(method_col).reindex(columns=all_methods))


def _scored_rows(
    table: pd.DataFrame, needed: list[str], method_col: str, score_col: str
) -> tuple[pd.DataFrame, list[str]]:
    """The `needed` columns of the rows that have a method and a score, method labels as
    strings, and every method the table names; refused unless each of them, at least 2, has
    a score."""
    method = table[method_col]
    # A categorical method column can name methods that never got a row; those must be
    # reported as missing rather than silently vanish.
    if isinstance(method.dtype, pd.CategoricalDtype):
        all_methods = [str(m) for m in method.cat.categories]
    else:
        all_methods = [str(m) for m in pd.unique(method.dropna())]

    df = table[needed].copy()
    df[method_col] = df[method_col].astype(object).map(str)
    df = df[table[method_col].notna().to_numpy() & df[score_col].notna().to_numpy()]

    with_score = set(df[method_col])
    never = [m for m in all_methods if m not in with_score]
    if never:
        raise ValueError(f"method(s) without any score: {never}")
    if len(all_methods) < 2:
        raise ValueError(f"need at least 2 methods to compare, got {all_methods}")
    return df, all_methods


def _refuse_shared_cells(df: pd.DataFrame, cell: list[str], seed_col: str | None) -> None:
    """Refuse rows that share a (method, group..., seed) cell."""
    # Several rows per cell without a seed column usually means a group column was forgotten;
    # averaging them silently would hide that.
    # (tables.seed_medians drops repeats instead: Table 1 pools experiments that repeat runs.)
    dup = df.duplicated(cell, keep=False)
    if dup.any():
        example = df.loc[dup, cell].iloc[0].to_dict()
        hint = "" if seed_col else " (pass seed_col, or add the missing group column)"
        raise ValueError(f"{int(dup.sum())} rows share a cell, e.g. {example}{hint}")


def _complete_groups(wide: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The groups (rows) of a groups x methods matrix in which every method has a score, as
    floats, and how many others were dropped (with a warning to score_matrix's caller)."""
    complete = wide.notna().all(axis=1)
    n_dropped = int((~complete).sum())
    if not complete.any():
        counts = wide.notna().sum()
        fewest = counts[counts == counts.min()].index.tolist()
        raise ValueError(
            f"no group has a score for every method; fewest groups: {fewest} "
            f"({int(counts.min())} group(s))"
        )
    wide = wide[complete]
    if n_dropped:
        warnings.warn(
            f"dropped {n_dropped} of {n_dropped + len(wide)} groups in which not every method "
            "has a score",
            UserWarning,
            stacklevel=4,  # the code that called score_matrix's caller (critical_difference's)
        )
    wide.columns.name = "method"
    return wide.astype(float), n_dropped


def average_ranks(scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rank methods within each group (row) and average over groups.

    Higher score is better, so rank 1 is the best; ties share the average rank.
    Returns ``(ranks, rank_matrix)`` with ``ranks`` sorted ascending (ties broken by name, so
    the order is reproducible).
    """
    rank_values = np.vstack([stats.rankdata(-row, method="average") for row in scores.to_numpy()])
    rank_matrix = pd.DataFrame(rank_values, index=scores.index, columns=scores.columns)
    ranks = (
        pd.DataFrame(
            {"method": list(scores.columns), "average_rank": rank_matrix.mean().to_numpy()}
        )
        .sort_values(["average_rank", "method"], kind="stable")
        .reset_index(drop=True)
    )
    order = list(ranks["method"])
    return ranks, rank_matrix[order]


# --------------------------------------------------------------------------- tests


def holm_correction(
    pvalues: Sequence[float] | np.ndarray, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down correction.

    Sorted ascending, ``p_(i)`` is rejected while ``p_(i) <= alpha / (m - i + 1)``; the first
    non-rejection stops the procedure. Adjusted p-values are the running maximum of
    ``(m - i + 1) * p_(i)`` clipped to 1, returned in the input order with the reject mask.
    NaN p-values are treated as 1 (nothing can be concluded from them).
    """
    p = np.asarray(pvalues, dtype=float).ravel()
    p = np.where(np.isnan(p), 1.0, p)
    m = p.size
    if m == 0:
        return np.empty(0), np.zeros(0, dtype=bool)
    order = np.argsort(p, kind="stable")
    sorted_p = p[order]
    factors = m - np.arange(m)  # m - i + 1 for 1-based i
    # Threshold comparison (not adjusted <= alpha) so the decision is exactly Holm's rule,
    # free of rounding in the multiplication.
    passes = sorted_p <= alpha / factors
    n_reject = m if passes.all() else int(np.argmin(passes))
    reject_sorted = np.arange(m) < n_reject
    adjusted_sorted = np.minimum(np.maximum.accumulate(factors * sorted_p), 1.0)

    adjusted = np.empty(m)
    reject = np.empty(m, dtype=bool)
    adjusted[order] = adjusted_sorted
    reject[order] = reject_sorted
    return adjusted, reject


def _merge_near_ties(d: np.ndarray, tol: float) -> np.ndarray:
    """`d` with |d| values closer than `tol` to their smaller neighbour made equal, and |d| <=
    tol made 0, so differences equal in exact arithmetic tie however floats rounded them."""
    magnitude = np.abs(d)
    order = np.argsort(magnitude, kind="stable")
    sorted_mag = magnitude[order]
    starts = np.r_[True, np.diff(sorted_mag) > tol]
    run_start = np.maximum.accumulate(np.where(starts, np.arange(d.size), 0))
    merged = sorted_mag[run_start]  # each run of near-equal values takes its first value
    merged[merged <= tol] = 0.0
    out = np.empty_like(magnitude)
    out[order] = merged
    return np.sign(d) * out


# scipy.stats.wilcoxon's method="auto" enumerates every sign flip up to this sample size when
# |d| has ties or zeros (below its default 9,999 resamples).
_SIGN_FLIP_MAX_N = 13


def wilcoxon_pratt_pvalue(d: np.ndarray) -> float:
    """Two-sided p-value of ``scipy.stats.wilcoxon(d, zero_method="pratt")``, bit for bit.

    For n <= 13 with ties or zeros in |d|, scipy enumerates all 2^n sign flips through
    permutation_test, re-ranking each (seconds per call at n = 12, minutes for a CD diagram of
    a few dozen methods). Flipping signs leaves the ranks of |d| as they are, so the null
    distribution of R+ is that of a sum over any subset of the non-zero ranks: counted here
    exactly on the half-integer grid, then divided by 2^n as scipy does (zeros multiply every
    count by the same 2^zeros). Every other case is scipy's own exact or normal test.
    """
    d = np.asarray(d, dtype=float)
    n = d.size
    if not np.isfinite(d).all():  # scipy's own answer (NaN for a NaN, inf - inf)
        return float(stats.wilcoxon(d, zero_method="pratt").pvalue)
    magnitude = np.abs(d)
    has_ties_or_zeros = (magnitude == 0).any() or np.unique(magnitude).size < n
    if n > _SIGN_FLIP_MAX_N or not has_ties_or_zeros:
        return float(stats.wilcoxon(d, zero_method="pratt").pvalue)
    doubled = np.rint(2 * stats.rankdata(magnitude)).astype(int)  # average ranks: halves
    weights = doubled[d != 0]
    observed = int(doubled[d > 0].sum())
    counts = np.zeros(int(weights.sum()) + 1, dtype=np.int64)
    counts[0] = 1
    for w in weights:  # counts[s] = number of subsets of the weights summing to s
        counts[w:] = counts[w:] + counts[:-w].copy()
    scale = 2 ** int((d == 0).sum())
    at_most = int(counts[: observed + 1].sum()) * scale
    at_least = int(counts[observed:].sum()) * scale
    return float(min(2 * min(at_most / 2**n, at_least / 2**n), 1.0))


def pairwise_wilcoxon(scores: pd.DataFrame) -> pd.DataFrame:
    """Raw two-sided Wilcoxon signed-rank p-values (Pratt zeros) for every pair of columns.

    Identical result vectors get p = 1.0: with no non-zero difference there is no evidence of
    a difference, and scipy would otherwise warn and may return NaN. Differences within 1e-9
    of the largest score of each other are merged before ranking: accuracies are fractions of
    a test count, and in floating point 100·1/30 − 0 and 100·4/30 − 100·3/30 differ in the
    last bit, which would break ties in |d| that exact arithmetic has (and with them scipy's
    choice between the exact and the tie-aware tests). Distinct accuracy differences are at
    least 100 / (test size) points apart, far above that tolerance.
    """
    names = list(scores.columns)
    values = scores.to_numpy(dtype=float)
    finite = np.abs(values[np.isfinite(values)])  # one inf must not make every |d| a tie
    tol = 1e-9 * (float(finite.max(initial=0.0)) or 1.0)
    out = np.ones((len(names), len(names)))
    for i, j in combinations(range(len(names)), 2):
        x, y = values[:, i], values[:, j]
        if np.array_equal(x, y):
            p = 1.0
        else:
            with np.errstate(invalid="ignore"):  # inf - inf: NaN, scipy's p then 1 below
                d = _merge_near_ties(x - y, tol)
            p = wilcoxon_pratt_pvalue(d) if d.any() else 1.0
            if np.isnan(p):
                p = 1.0
        out[i, j] = out[j, i] = p
    return pd.DataFrame(out, index=pd.Index(names, name="method"), columns=names)


def describe_cliques(cliques: list[list[str]]) -> str:
    """The maximal groups of inseparable methods, a line each (CD diagrams draw runs instead)."""
    lines = "".join(f"\n  - {'; '.join(map(str, c))}" for c in cliques)
    return f"Maximal groups no pair of which differs:{lines or ' none'}"


# --------------------------------------------------------------------------- main entry


def format_p(p: float) -> str:
    """A p-value in three significant digits, or in scientific notation below 0.001."""
    return f"{p:.3g}" if p >= 1e-3 else f"{p:.2e}"


def best_per_value(ranks: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """The best-ranked row for each distinct value (combination) of `columns`, best first.

    `ranks` has an ``average_rank`` column (1 = best) and the columns named; ties keep the
    earlier row.
    """
    missing = [c for c in columns if c not in ranks.columns]
    if missing:
        raise ValueError(f"ranks table has no column(s) {missing}; columns: {list(ranks.columns)}")
    ordered = ranks.sort_values("average_rank", kind="stable")
    return ordered.drop_duplicates(list(columns)).reset_index(drop=True)


def friedman(scores: pd.DataFrame) -> tuple[float, float]:
    """Friedman chi-square and p-value of a groups x methods score matrix.

    (nan, nan) with fewer than 3 methods (the test needs 3); (nan, 1.0) when every group is a
    full tie, where scipy would divide 0 by 0 although there is simply no evidence.
    """
    values = scores.to_numpy()
    if values.shape[1] < 3:
        return float("nan"), float("nan")
    if np.all(values == values[:, :1]):
        return float("nan"), 1.0
    res = stats.friedmanchisquare(*values.T)
    return float(res.statistic), float(res.pvalue)


def describe_friedman(statistic: float, pvalue: float, alpha: float = 0.05) -> str:
    """One sentence on a Friedman result that says plainly whether it is significant."""
    if math.isnan(statistic):
        return "Friedman test not significant: every method ties in every group."
    significant = pvalue < alpha
    verdict = "significant" if significant else "NOT significant"
    return (
        f"Friedman test {verdict}: chi2 = {statistic:.3f}, p = {format_p(pvalue)} "
        f"{'<' if significant else '>='} alpha = {alpha:g}."
    )


def critical_difference(
    table: pd.DataFrame,
    method_col: str,
    score_col: str,
    group_cols: str | Sequence[str],
    *,
    alpha: float = 0.05,
    seed_col: str | None = None,
) -> CDResult:
    """Friedman test + pairwise Wilcoxon/Holm post-hoc tests over a long-format table.

    ``table`` has one row per (method, group..., seed) with ``score_col`` higher-is-better.
    Seeds are reduced by their median; only groups where every method has a score are used.

    When the Friedman test is not significant the pairwise p-values are still reported, but
    no pair is declared separable: the omnibus test is the gate that protects the post-hoc
    tests, so the single clique is the whole set of methods. With two methods the Friedman
    test is skipped and the one Wilcoxon test decides.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha (--alpha) must lie in (0, 1), got {alpha}")
    scores, n_dropped = score_matrix(table, method_col, score_col, group_cols, seed_col)
    ranks, rank_matrix = average_ranks(scores)
    order = list(ranks["method"])
    scores = scores[order]
    k, n = len(order), len(scores)

    raw = pairwise_wilcoxon(scores)
    adjusted, reject = _holm_pairs(raw.to_numpy(), alpha)
    frame = {"index": pd.Index(order, name="method"), "columns": order}

    friedman_tested = k >= 3
    stat, fp, gate, friedman_sentence = _friedman_gate(scores, alpha)
    cliques, verdict = _cliques(pd.DataFrame(~reject, **frame), reject, gate, alpha)
    dropped = f" ({n_dropped} incomplete groups dropped)" if n_dropped else ""
    lines = (
        f"{k} methods compared over {n} complete groups{dropped}.",
        friedman_sentence,
        verdict,
        f"Best average rank: {order[0]} ({ranks['average_rank'].iloc[0]:.2f}).",
    )

    return CDResult(
        ranks=ranks,
        rank_matrix=rank_matrix,
        pvalues=pd.DataFrame(adjusted, **frame),
        raw_pvalues=raw,
        friedman_statistic=stat,
        friedman_pvalue=fp,
        friedman_significant=bool(friedman_tested and gate),
        alpha=float(alpha),
        n_groups=n,
        cliques=[list(c) for c in cliques],
        summary=" ".join(lines),
        score_matrix=scores,
        significant=pd.DataFrame(reject & gate, **frame),
        friedman_tested=friedman_tested,
        n_dropped_groups=n_dropped,
    )


_FRIEDMAN_SKIPPED = (
    "Friedman test skipped: it needs at least 3 methods; the Wilcoxon signed-rank test alone "
    "decides."
)


def _friedman_gate(scores: pd.DataFrame, alpha: float) -> tuple[float, float, bool, str]:
    """The Friedman test over the methods (columns) of `scores`: statistic, p-value, whether
    it lets the pairwise tests declare pairs different, and a sentence on it. With two methods
    it is skipped and lets them: the one Wilcoxon test decides alone."""
    stat, fp = friedman(scores)
    if scores.shape[1] < 3:
        return stat, fp, True, _FRIEDMAN_SKIPPED
    return stat, fp, fp < alpha, describe_friedman(stat, fp, alpha)


def _holm_pairs(raw: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Holm-adjusted p-values and rejections of every pair, as symmetric matrices (diagonal 1
    and False), from the methods x methods raw p-values."""
    k = raw.shape[0]
    iu = np.triu_indices(k, 1)
    adjusted_flat, reject_flat = holm_correction(raw[iu], alpha)
    adjusted = np.ones((k, k))
    reject = np.zeros((k, k), dtype=bool)
    adjusted[iu] = adjusted_flat
    reject[iu] = reject_flat
    return np.minimum(adjusted, adjusted.T), reject | reject.T


def _cliques(
    inseparable: pd.DataFrame, reject: np.ndarray, gate: bool, alpha: float
) -> tuple[list[list[str]], str]:
    """The groups of inseparable methods and a sentence on the pairwise tests.

    `inseparable`: methods x methods, True where Holm keeps a pair; `gate`: whether the
    Friedman test (or, with two methods, nothing) allows declaring pairs different.
    """
    order = list(inseparable.columns)
    n_pairs = len(order) * (len(order) - 1) // 2
    n_sig = int(np.triu(reject, 1).sum())
    if gate:
        cliques = [c for c in maximal_cliques(inseparable) if len(c) >= 2]
        return cliques, (
            f"Wilcoxon signed-rank (Pratt) with Holm correction: {n_sig} of {n_pairs} pairs "
            f"differ significantly at alpha = {alpha:g}; {len(cliques)} group(s) of "
            "indistinguishable methods."
        )
    return [order], (
        "The methods cannot be told apart, so no pairwise difference is claimed and all "
        f"methods form one group (Holm-corrected Wilcoxon would reject {n_sig} of "
        f"{n_pairs} pairs, but the omnibus test does not license that)."
    )
