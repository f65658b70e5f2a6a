"""One critical-difference pipeline for the workflow's experiments and for `imprint cd`.

Every method is ranked over the groups (the voters); the pairwise tests, which grow as the
square of the number of methods, cover a selection (the best per value of some components, or
the best few), ranked again among themselves; the Friedman test is reported over all. Pure
functions: tables in, a Ranking and text out (see imprint.figures.cd_diagram for the diagram).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from imprint.analysis.stats import (
    CDResult,
    average_ranks,
    best_per_value,
    critical_difference,
    describe_cliques,
    describe_friedman,
    friedman,
    score_matrix,
)
from imprint.analysis.tables import CONFIG_COLUMNS, GROUP_COLUMNS, with_alpha
from imprint.engine.grid import describe_config, describe_values

__all__ = [
    "Ranking",
    "configuration_methods",
    "describe_ranking",
    "named_tables",
    "rank_methods",
    "stack_tables",
]


@dataclass(frozen=True)
class Ranking:
    """Every method's average rank, and the tests over the selected ones."""

    ranks: pd.DataFrame
    """Columns ``method``, ``average_rank`` (+ the attributes given), best first; all methods."""
    n_groups: int
    """Complete groups the ranks are averaged over."""
    friedman: tuple[float, float]
    """Friedman chi-square and p-value over every method."""
    shown: dict[str, str]
    """The selected methods, each with its name in the tests and the diagram."""
    selection: str
    """The selection in words, e.g. 'the best 30'."""
    result: CDResult
    """The tests over the selection, ranked again among themselves."""


def stack_tables(
    tables: Sequence[tuple[str, pd.DataFrame]],
    method: str,
    score: str,
    groups: Sequence[str] | None = None,
    seed: str | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """Several (name, table) pairs stacked into one, and the group columns (the voters).

    groups=None: those of GROUP_COLUMNS the tables have (every table alike). Errors name the
    table. With several tables the group columns are compared as text: a `--tag task=1` is text
    in Parquet but a number once a CSV is read back, and must be one voter, not two.
    """
    names = [name for name, _ in tables]
    if groups is None:
        groups = [c for c in GROUP_COLUMNS if all(c in f.columns for _, f in tables)]
        for c in GROUP_COLUMNS:
            lacking = [str(n) for n, f in tables if c not in f.columns]
            if c not in groups and len(lacking) < len(tables):
                raise ValueError(
                    f"column '{c}' is in some tables but not in {', '.join(lacking)}: tag every "
                    f"table alike (imprint evaluate --tag {c}=...), or name the voters with --groups"
                )
        if not groups:
            raise ValueError(
                f"{', '.join(map(str, names))}: none of the default group columns "
                f"{list(GROUP_COLUMNS)}; name the columns whose values are the voters with "
                "--groups (or add them with imprint evaluate --tag dataset=...)"
            )
    needed = [method, score, *groups, *([seed] if seed else [])]
    for name, frame in tables:
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(f"{name}: no column(s) {missing}; columns are {list(frame.columns)}")
        _check_scores(name, frame, score)
    frames = [frame for _, frame in tables]
    if len(frames) > 1:
        frames = [f.astype({c: str for c in groups}) for f in frames]
    table = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    voters = table[list(groups)].drop_duplicates()
    if len(voters) < 2:
        found = ", ".join(f"{c}={v!r}" for c, v in voters.iloc[0].items())
        raise ValueError(
            f"{', '.join(map(str, names))}: one group (voter) only ({found}): a critical-"
            f"difference test ranks methods within each group of {list(groups)} and compares "
            "the ranks across groups, so it needs two or more (stack more tables, or name "
            "other --groups)"
        )
    return table, list(groups)


def _check_scores(name, frame: pd.DataFrame, score: str) -> None:
    """Every score a number: text or NaN would be dropped or mis-ranked without a word."""
    if frame.empty:
        raise ValueError(f"{name}: no rows (columns {list(frame.columns)})")
    values = frame[score]
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        numbers = pd.to_numeric(values, errors="coerce")
        text = values[numbers.isna() & values.notna()]
        example = f"; row {text.index[0]} holds {text.iloc[0]!r}" if len(text) else ""
        raise ValueError(
            f"{name}: column '{score}' must hold numbers (higher is better), got "
            f"{values.dtype}{example}"
        )
    missing = values.isna().to_numpy()
    if missing.any():
        rows = frame.index[missing]
        raise ValueError(
            f"{name}: column '{score}' is NaN in {missing.sum()} row(s) (first rows: "
            f"{rows[:5].tolist()}); every score is needed: remove those rows or fill them"
        )


def configuration_methods(
    results: pd.DataFrame, exclude_gen: Sequence[str] = ()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A results table with a `method` column naming each configuration by its components.

    Configurations of the GENs in `exclude_gen` are left out (ls and kls are the oracle, fitted
    on every class at once, not imprinting). Returns the table and one row per method with its
    config_id and configuration columns (for rank_methods' `attributes`).
    """
    results = with_alpha(results[~results["gen"].isin(exclude_gen)])
    if results.empty:
        raise ValueError(f"no results left to rank after leaving out gen {list(exclude_gen)}")
    labels = results.drop_duplicates("config_id").set_index("config_id")
    names = {i: describe_config(r) for i, r in labels.iterrows()}
    if len(set(names.values())) < len(names):  # labels are short; IDs keep them apart
        names = {i: f"{name} [{i[:6]}]" for i, name in names.items()}
    results = results.assign(method=results["config_id"].map(names))
    attributes = results.drop_duplicates("method")[["method", "config_id", *CONFIG_COLUMNS]]
    return results, attributes


def rank_methods(
    table: pd.DataFrame,
    method: str,
    score: str,
    groups: Sequence[str],
    *,
    seed: str | None = None,
    alpha: float = 0.05,
    highlight: Sequence[str] = (),
    max_methods: int | None = None,
    attributes: pd.DataFrame | None = None,
) -> Ranking:
    """Rank every method, then test a selection: the best configuration per value of the
    `highlight` columns (of `attributes`, e.g. one per GEN), else the best `max_methods`, else
    all of them.

    `table` is long (a row per method x group x seed); seeds are reduced by their median.
    `attributes`: one row per method (a `method` column) joined to the ranks.
    """
    if max_methods is not None and max_methods < 2:
        raise ValueError(f"max_methods (--max-methods) must be at least 2, got {max_methods}")
    if not highlight and not max_methods:  # the tests rank every method themselves
        result = critical_difference(table, method, score, groups, seed_col=seed, alpha=alpha)
        ranks = _with_attributes(result.ranks, attributes)
        shown = {m: m for m in ranks["method"]}
        stats = (result.friedman_statistic, result.friedman_pvalue)
        return Ranking(ranks, result.n_groups, stats, shown, f"all {len(shown)}", result)
    scores, _ = score_matrix(table, method, score, groups, seed_col=seed)
    ranks = _with_attributes(average_ranks(scores)[0], attributes)
    if highlight:
        # As the paper's diagrams: the best configuration of each value of the highlighted
        # component(s), e.g. one per GEN.
        shown = {}
        for _, r in best_per_value(ranks, highlight).iterrows():
            values = describe_values(r, highlight)
            shown[r["method"]] = f"{values}: {r['method']}" if values else r["method"]
        selection = f"the best configuration per {' × '.join(highlight)}"
    else:
        shown = {m: m for m in ranks["method"].head(max_methods)}
        selection = f"the best {len(shown)}"
    subset = table[table[method].isin(shown)] if len(shown) < len(ranks) else table
    if any(name != label for name, label in shown.items()):
        subset = subset.assign(**{method: subset[method].map(shown)})
    result = critical_difference(subset, method, score, groups, seed_col=seed, alpha=alpha)
    return Ranking(ranks, scores.shape[0], friedman(scores), shown, selection, result)


def _with_attributes(ranks: pd.DataFrame, attributes: pd.DataFrame | None) -> pd.DataFrame:
    return ranks if attributes is None else ranks.merge(attributes, on="method", how="left")


def describe_ranking(ranking: Ranking, excluded: Sequence[str] | None = None) -> str:
    """The text of summary.txt: the tests over the selection and the groups of inseparable
    methods, opened (given `excluded`, the workflow's GENs left out) by the ranking of every
    configuration and the Friedman test over all of them (SPEC §7)."""
    result = ranking.result
    body = f"{result.summary}\n{describe_cliques(result.cliques)}\n"
    if excluded is None:
        return body
    left_out = f" (gen {', '.join(excluded)} left out)" if excluded else ""
    return (
        f"{len(ranking.ranks)} configurations{left_out} ranked over {ranking.n_groups} groups. "
        f"Over all of them: {describe_friedman(*ranking.friedman, result.alpha)}\n"
        f"Pairwise tests and the diagram: {ranking.selection} ({len(ranking.shown)}), ranked "
        f"again among themselves.\n{body}"
    )


def named_tables(tables: pd.DataFrame | Sequence[tuple[str, pd.DataFrame]]) -> list:
    """(name, table) pairs: a single DataFrame is named 'results'."""
    return [("results", tables)] if isinstance(tables, pd.DataFrame) else list(tables)
