"""The statistics behind the paper's figures and tables: seed medians, Table 1, best k, §5.3.

Pure functions: long results tables (and the collapse table) in, DataFrames out; no plotting.
Seeds are always reduced to their median per configuration x group first (`seed_medians`);
averages over tasks, mappings or groups are taken of those medians.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import pandas as pd

from imprint.engine.vocabulary import CONFIG_KEYS, GROUP_COLUMNS, NO_ALPHA
from imprint.io import load_yaml_text

__all__ = [
    "CONFIG_COLUMNS",
    "GROUP_COLUMNS",
    "MERGED_METHODS",
    "TABLE1_METHODS",
    "Table1Method",
    "best_k_table",
    "merged_classes_table",
    "nc1_gain_pairs",
    "seed_medians",
    "table1",
]

# Figures average over groups (GROUP_COLUMNS, the vocabulary's); the critical-difference tests
# rank methods within each.
CONFIG_COLUMNS = CONFIG_KEYS  # the configuration columns of a results table
NORM_COLUMNS = ("norm_pre", "norm_post", "norm_inf")
_SEED_SUMMARY_EXTRA = ("f1_macro", "n_proxies", "gen_seconds", "inference_seconds")
MAPPING_PATTERN = re.compile(r"^map(\d+)-(\d+)$")

# The paper's order of backbones and datasets in tables, panels and legends; names it does not
# list follow, sorted.
BACKBONE_ORDER = ("resnet18", "resnet50", "vit_b_16", "swin_b")
DATASET_ORDER = ("MNIST", "FashionMNIST", "CIFAR-10", "CombiDigits", "ImageNet")

# The figures compare GENs under plain max aggregation on full, unfiltered training sets.
PLAIN_MAX = {"agg": "max", "distance": "inner_product", "presampling": "all"}


# --------------------------------------------------------------------------- seeds and filters


def ordered(values: Iterable, preferred: Iterable[str]) -> list:
    """The distinct `values`, those in `preferred` first in its order, the rest sorted."""
    present = list(dict.fromkeys(values))
    first = [p for p in preferred if p in present]
    return first + sorted((v for v in present if v not in first), key=str)


def normalise_mapping(values: pd.Series) -> pd.Series:
    # Plain datasets carry no remapping; NaN, None and "" all mean the same and must merge.
    out = values.astype(object).where(values.notna(), "none").map(str)
    return out.where(out != "", "none")


def check_columns(df: pd.DataFrame, needed: Iterable[str], where: str) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise ValueError(f"{where}: table lacks the column(s) {missing}")


def with_alpha(results: pd.DataFrame) -> pd.DataFrame:
    """`results` with the configuration column `alpha`: NO_ALPHA where a table has none (one
    written before it was a key, or made by hand: no GEN text_mean in it)."""
    if "alpha" in results.columns:
        return results
    return results.assign(alpha=NO_ALPHA)


def seed_medians(results: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration x group: the median accuracy over seeds (and its min/max).

    Rows repeating a (group, configuration, seed) - e.g. the same configuration run by two
    experiments - count once, so seeds of one configuration are pooled across experiments.
    Columns: GROUP_COLUMNS, CONFIG_COLUMNS, `config_id` (when given), `accuracy` (median),
    `accuracy_min`, `accuracy_max`, `n_seeds` and the medians of f1_macro, n_proxies and the
    timings when those columns exist. A missing mapping becomes "none". An incremental
    experiment's table (session columns) counts its last session, every class seen. A table
    without `alpha` (written before GEN text_mean had it) reads as α unused (NO_ALPHA).
    """
    from imprint.engine.incremental import final_sessions

    results = final_sessions(with_alpha(results))
    # Repeats dropped (stats.score_matrix refuses them): pooled experiments rerun configurations.
    check_columns(results, [*GROUP_COLUMNS, *CONFIG_COLUMNS, "seed", "accuracy"], "seed_medians")
    keys = [*GROUP_COLUMNS, *CONFIG_COLUMNS]
    extra = [c for c in _SEED_SUMMARY_EXTRA if c in results.columns]
    with_id = "config_id" in results.columns
    cols = [*keys, "seed", "accuracy", *extra] + (["config_id"] if with_id else [])
    df = results[cols].copy()
    df["mapping"] = normalise_mapping(df["mapping"])
    df = df.drop_duplicates([*keys, "seed"])
    spec = {
        "accuracy": ("accuracy", "median"),
        "accuracy_min": ("accuracy", "min"),
        "accuracy_max": ("accuracy", "max"),
        "n_seeds": ("accuracy", "count"),
        **{c: (c, "median") for c in extra},
    }
    if with_id:
        spec["config_id"] = ("config_id", "first")
    out = df.groupby(keys, dropna=False, sort=True).agg(**spec).reset_index()
    for col in ("k", "fewshot", "m"):
        if out[col].notna().all():
            out[col] = out[col].astype("int64")
    return out


def select(df: pd.DataFrame, where: str, **conditions) -> pd.DataFrame:
    """Apply equality / membership filters in order, naming the first one that empties df."""
    if df.empty:
        raise ValueError(f"{where}: the results table has no rows")
    for col, want in conditions.items():
        if isinstance(want, list | tuple | set | frozenset):
            kept = df[df[col].isin(list(want))]
            what = f"{col} in {sorted(map(str, want))}"
        else:
            kept = df[df[col] == want]
            what = f"{col} == {want!r}"
        if kept.empty:
            present = sorted(map(str, pd.unique(df[col])))
            shown = ", ".join(present[:10]) + (", ..." if len(present) > 10 else "")
            raise ValueError(f"{where}: no rows with {what} (values present: {shown})")
        df = kept
    return df


def plain_max(med: pd.DataFrame, where: str, **extra) -> pd.DataFrame:
    """The rows of plain max aggregation (PLAIN_MAX) that also match `extra`."""
    return select(med, where, **PLAIN_MAX, **extra)


def has_plain_max_rows(results: pd.DataFrame, gen: str, **extra) -> bool:
    """Whether plain_max(…, gen=gen, **extra) would keep any row with k >= 1."""
    wanted = {**PLAIN_MAX, "gen": gen, **extra}
    keep = (results[list(wanted)] == pd.Series(wanted)).all(axis=1) & (results["k"] >= 1)
    return bool(keep.any())


def pick_norms(df: pd.DataFrame, prefer: Sequence[str]) -> tuple[str, str, str]:
    """The preferred (NORMpre, NORMpost, NORMinf) when present, else the most common one."""
    counts = df.groupby(list(NORM_COLUMNS), sort=True).size()
    prefer = tuple(prefer)
    if prefer in set(counts.index):
        return prefer
    return tuple(counts.idxmax())


def norms_per_gen(
    df: pd.DataFrame, prefer: Sequence[str]
) -> tuple[pd.DataFrame, dict[str, tuple[str, str, str]]]:
    """The rows of each GEN's preferred-or-commonest norm triple, and that triple per GEN."""
    # GENs run under different norms (kls goes without them in most grids), so each GEN
    # keeps its own preferred-or-commonest norm triple instead of being dropped.
    parts, chosen = [], {}
    for gen, part in df.groupby("gen", sort=True):
        triple = pick_norms(part, prefer)
        chosen[gen] = triple
        mask = np.ones(len(part), dtype=bool)
        for col, value in zip(NORM_COLUMNS, triple):
            mask &= (part[col] == value).to_numpy()
        parts.append(part[mask])
    return pd.concat(parts, ignore_index=True), chosen


# --------------------------------------------------------------------------- Table 1


@dataclass(frozen=True)
class Table1Method:
    """One row of the paper's Table 1: display names of the components and the row filter."""

    method: str
    components: tuple[str, str, str, str, str]
    """NORMpre, GEN, NORMpost, NORMinf, AGG as the paper prints them."""
    filters: Mapping[str, object] = field(default_factory=dict)
    paper_accuracy: float = float("nan")
    # A row only where the results have it (zero-shot needs a CLIP-like backbone).
    only_where_run: bool = False


def _load_table1() -> tuple[dict, tuple[Table1Method, ...]]:
    # The paper's five methods are data: analysis/table1.yaml.
    text = resources.files("imprint.analysis").joinpath("table1.yaml").read_text()
    spec = load_yaml_text(text, "imprint/analysis/table1.yaml")
    methods = tuple(
        Table1Method(
            m["method"],
            tuple(m["components"]),
            m["filters"],
            m["paper_accuracy"],
            m.get("only_where_run", False),
        )
        for m in spec["methods"]
    )
    return spec["common"], methods


TABLE1_COMMON, TABLE1_METHODS = _load_table1()  # common: every method's rows
TABLE1_COMPONENT_COLUMNS = ("NORMpre", "GEN", "NORMpost", "NORMinf", "AGG")


def table1(results: pd.DataFrame, methods: Sequence[Table1Method] = TABLE1_METHODS) -> pd.DataFrame:
    """The paper's Table 1 measured on `results`.

    accuracy = mean over the (backbone, dataset, mapping, task) groups present of the
    seed-median accuracy (if several configurations match a method in one group they are
    averaged first). Presampling 'all' and few-shot -1 throughout. A method without rows gets
    NaN accuracy and n_groups 0, or no row where it is `only_where_run`.
    """
    med = seed_medians(results)
    if med.empty:
        raise ValueError("table1: the results table has no rows")
    rows = []
    for method in methods:
        mask = np.ones(len(med), dtype=bool)
        for col, value in (TABLE1_COMMON | dict(method.filters)).items():
            mask &= (med[col] == value).to_numpy()
        per_group = med[mask].groupby(list(GROUP_COLUMNS), sort=False)["accuracy"].mean()
        accuracy = float(per_group.mean()) if len(per_group) else float("nan")
        if method.only_where_run and not len(per_group):
            continue
        rows.append(
            {
                "method": method.method,
                **dict(zip(TABLE1_COMPONENT_COLUMNS, method.components)),
                "accuracy": accuracy,
                "n_groups": int(len(per_group)),
                "paper_accuracy": method.paper_accuracy,
                "difference": accuracy - method.paper_accuracy,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- §5.3 multi-modality


def k_curves(
    results: pd.DataFrame, where: str, gen: str, norms: Sequence[str]
) -> tuple[pd.DataFrame, tuple[str, str, str]]:
    """Seed-median accuracy per (backbone, dataset, mapping, k >= 1), mean over tasks."""
    df = plain_max(seed_medians(results), where, fewshot=-1, gen=gen)
    df = df[df["k"] >= 1]
    if df.empty:
        raise ValueError(f"{where}: no rows with gen == {gen!r} and k >= 1")
    triple = pick_norms(df, norms)
    df = select(df, where, **dict(zip(NORM_COLUMNS, triple)))
    grouped = df.groupby(["backbone", "dataset", "mapping", "k"], sort=True)
    curves = grouped.agg(accuracy=("accuracy", "mean"), n_tasks=("task", "nunique"))
    return curves.reset_index(), triple


def mapping_parts(mapping: str) -> tuple[float, float]:
    """(i, j) of a remapping 'map{i}-{j}' (i classes merged per label, variation j); NaNs else."""
    match = MAPPING_PATTERN.match(str(mapping))
    return (float(match[1]), float(match[2])) if match else (float("nan"), float("nan"))


def merged_classes(mappings: pd.Series) -> list[float]:
    """i of each 'map{i}-{j}' mapping, NaN for the others."""
    return [mapping_parts(m)[0] for m in mappings]


def best_k_table(
    results: pd.DataFrame, *, gen: str = "kmeans", norms: Sequence[str] = ("l2", "l2", "l2")
) -> pd.DataFrame:
    """Per (backbone, dataset, mapping): the k with the best seed-median accuracy.

    Accuracy is the seed median averaged over tasks; ties go to the smallest k. Columns:
    backbone, dataset, mapping, merged_classes (i of 'map{i}-{j}', else NaN), variation (j),
    best_k, best_accuracy, accuracy_k1, gain_over_k1, n_k, n_tasks, norm_pre/post/inf.
    """
    curves, triple = k_curves(results, "best_k_table", gen, norms)
    rows = []
    for (backbone, dataset, mapping), part in curves.groupby(
        ["backbone", "dataset", "mapping"], sort=False
    ):
        acc = part["accuracy"].to_numpy()
        best = np.nanmax(acc)
        best_k = int(part["k"].to_numpy()[np.isclose(acc, best, rtol=0, atol=1e-9)].min())
        at_one = part.loc[part["k"] == 1, "accuracy"]
        k1 = float(at_one.iloc[0]) if len(at_one) else float("nan")
        i, j = mapping_parts(mapping)
        rows.append(
            {
                "backbone": backbone,
                "dataset": dataset,
                "mapping": mapping,
                "merged_classes": i,
                "variation": j,
                "best_k": best_k,
                "best_accuracy": float(best),
                "accuracy_k1": k1,
                "gain_over_k1": float(best) - k1,
                "n_k": int(part["k"].nunique()),
                "n_tasks": int(part["n_tasks"].max()),
                **dict(zip(NORM_COLUMNS, triple)),
            }
        )
    out = pd.DataFrame(rows)
    order_b = {b: n for n, b in enumerate(ordered(out["backbone"], BACKBONE_ORDER))}
    order_d = {d: n for n, d in enumerate(ordered(out["dataset"], DATASET_ORDER))}
    out = out.assign(_b=out["backbone"].map(order_b), _d=out["dataset"].map(order_d)).sort_values(
        ["_b", "_d", "merged_classes", "variation", "mapping"], na_position="first"
    )
    return out.drop(columns=["_b", "_d"]).reset_index(drop=True)


MERGED_METHODS = (  # (method, GEN whose curve it reads, k: 1 or the best)
    ("mean", "kmeans", "one"),
    ("ls", "kls", "one"),
    ("kmeans", "kmeans", "best"),
    ("kls", "kls", "best"),
)


def pick_best_k(per_k: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The row of the best accuracy per group of `keys`; ties (1e-9) go to the smallest k."""
    per_k = per_k.sort_values([*keys, "k"])
    top = per_k.groupby(keys)["accuracy"].transform("max")
    best = per_k[np.isclose(per_k["accuracy"], top, rtol=0, atol=1e-9)]
    return best.groupby(keys, sort=False).head(1)


def best_k_of_mean(curves: pd.DataFrame) -> pd.DataFrame:
    """Per (backbone, dataset, i): the k whose accuracy, averaged over the variations j, is best.

    `curves` are k_curves' with a merged_classes column. The reference's order (average over
    j, then pick k); ties go to the smallest k.
    """
    rem = curves[curves["merged_classes"].notna()]
    keys = ["backbone", "dataset", "merged_classes"]
    per_k = rem.groupby([*keys, "k"], sort=True)["accuracy"].mean().reset_index()
    return pick_best_k(per_k, keys)


def merged_classes_table(
    results: pd.DataFrame,
    *,
    norms: Sequence[str] = ("l2", "l2", "l2"),
    oracle_norms: Sequence[str] = ("none", "none", "none"),
) -> pd.DataFrame:
    """§5.3 as the paper plots it: accuracy against i, the classes merged into one label.

    Over the remappings 'map{i}-{j}': the seed-median accuracy (mean over tasks) is averaged
    over the variations j for every k, and then — as the reference's analysis does — the k
    with the best average is picked (ties: the smallest k). Several tasks of one remapping are
    averaged first (the paper's §5.3 grids have the one task 'all'). Methods: mean and ls are
    k-means and kls at k = 1; kmeans and kls at their best k. kls uses `oracle_norms`, the
    others `norms` (each falls back to the first norm triple present). Columns: backbone, dataset,
    merged_classes, method, gen, k, accuracy (mean over j), std (over j), n_variations, ci95
    (1.96 std / sqrt(n)), norm_pre/post/inf. Empty when no remapping is present.
    """
    columns = ["backbone", "dataset", "merged_classes", "method", "gen", "k", "accuracy"]
    columns += ["std", "n_variations", "ci95", *NORM_COLUMNS]
    parts = []
    keys = ["backbone", "dataset", "merged_classes"]
    for gen in dict.fromkeys(g for _, g, _ in MERGED_METHODS):  # each curve once: kmeans, kls
        if not has_plain_max_rows(results, gen, fewshot=-1):
            continue  # e.g. kls only in few-shot or mNN rows: no such lines
        curves, triple = k_curves(
            results, "merged_classes_table", gen, oracle_norms if gen == "kls" else norms
        )
        curves["merged_classes"] = merged_classes(curves["mapping"])
        curves = curves[curves["merged_classes"].notna()]
        if curves.empty:
            continue
        per_k = (
            curves.groupby([*keys, "k"], sort=True)["accuracy"]
            .agg(accuracy="mean", std="std", n_variations="count")
            .reset_index()
        )
        for method, _, which in (m for m in MERGED_METHODS if m[1] == gen):
            chosen = per_k[per_k["k"] == 1] if which == "one" else pick_best_k(per_k, keys)
            parts.append(chosen.assign(method=method, gen=gen, **dict(zip(NORM_COLUMNS, triple))))
    if not parts:
        return pd.DataFrame(columns=columns)
    out = pd.concat(parts, ignore_index=True)
    out["ci95"] = 1.96 * out["std"] / np.sqrt(out["n_variations"])
    out["k"] = out["k"].astype(int)
    order_b = {b: n for n, b in enumerate(ordered(out["backbone"], BACKBONE_ORDER))}
    order_m = {m: n for n, (m, _, _) in enumerate(MERGED_METHODS)}
    out = out.assign(_b=out["backbone"].map(order_b), _m=out["method"].map(order_m))
    out = out.sort_values(["_b", "dataset", "_m", "merged_classes"])
    return out[columns].reset_index(drop=True)


# --------------------------------------------------------------------------- neural collapse


def collapse_table(collapse: pd.DataFrame, where: str, needed: Sequence[str]) -> pd.DataFrame:
    """The collapse table checked for `needed` columns and rows, its mappings normalised."""
    check_columns(collapse, ["dataset", "backbone", "mapping", *needed], where)
    if collapse.empty:
        raise ValueError(f"{where}: the collapse table has no rows")
    df = collapse.copy()
    df["mapping"] = normalise_mapping(df["mapping"])
    return df


def pooled_mapping(mapping):
    """'map{i}-{j}' -> 'map{i}' (the variations j of i merged classes pooled); others as is."""
    match = MAPPING_PATTERN.match(str(mapping))
    return f"map{match[1]}" if match else mapping


def nc1_gain_pairs(
    collapse: pd.DataFrame,
    results: pd.DataFrame,
    *,
    gen: str = "kmeans",
    norms: Sequence[str] = ("l2", "l2", "l2"),
    nc1_column: str = "nc1",
    gain_k: int | None = 5,
    pool_variations: bool = True,
) -> tuple[pd.DataFrame, tuple[str, str, str]]:
    """NC1 beside the gain from multiple proxies, one row per (backbone, dataset, mapping).

    gain = seed-median accuracy of `gen` at k = `gain_k` minus at k = 1 (the paper's Fig. 12
    uses k = 5; None: the best k > 1), means over tasks, one norm triple (`norms` when present,
    else the commonest; the triple used is returned). With `pool_variations`, the variations
    j of an ImageNet remapping map{i}-{j} are averaged (NC1 and gain) into one point 'map{i}'
    per number of merged classes, as in the paper. Rows: backbone, dataset, mapping, gain,
    `nc1_column`, n_variations.
    """
    where = "plot_nc1_vs_gain"
    nc = collapse_table(collapse, where, [nc1_column])
    curves, triple = k_curves(results, where, gen, norms)
    keys = ["backbone", "dataset", "mapping"]
    gains = []
    for key, part in curves.groupby(keys, sort=False):
        at_one = part.loc[part["k"] == 1, "accuracy"]
        more = part.loc[part["k"] == gain_k if gain_k is not None else part["k"] > 1, "accuracy"]
        if len(at_one) and len(more):
            gains.append((*key, float(more.max()) - float(at_one.iloc[0])))
    if not gains:
        wanted = f"k = {gain_k}" if gain_k is not None else "k > 1"
        raise ValueError(
            f"{where}: no (backbone, dataset, mapping) has both k = 1 and {wanted}; "
            f"k values present: {sorted(curves['k'].unique().tolist())}"
        )
    gain = pd.DataFrame(gains, columns=[*keys, "gain"])
    nc_mean = nc.groupby(keys, as_index=False)[nc1_column].mean()
    pairs = gain.merge(nc_mean, on=keys, how="inner").dropna(subset=[nc1_column, "gain"])
    if pairs.empty:
        raise ValueError(
            f"{where}: no (backbone, dataset, mapping) is in both tables; results have "
            f"{sorted(set(map(tuple, gain[keys].to_numpy())))[:5]}, collapse has "
            f"{sorted(set(map(tuple, nc_mean[keys].to_numpy())))[:5]}"
        )
    pairs["n_variations"] = 1
    if pool_variations:
        pairs["mapping"] = pairs["mapping"].map(pooled_mapping)
        pairs = pairs.groupby(keys, as_index=False, sort=False, dropna=False).agg(
            gain=("gain", "mean"),
            **{nc1_column: (nc1_column, "mean")},
            n_variations=("n_variations", "sum"),
        )
    return pairs.reset_index(drop=True), triple
