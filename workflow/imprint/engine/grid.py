"""Experiment grids: values per key → a filtered table of configurations with stable IDs.

A grid is a mapping from the keys in CONFIG_KEYS (plus `seeds`) to lists of values, or a
list of such mappings (`parts`) whose configurations are joined. The filtering rules are
the paper reference's and decide how many configurations each grid has.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

import pandas as pd

from imprint.engine.vocabulary import (
    AGG,
    ALPHA_GEN,
    BASELINE_MARK,
    CONFIG_KEYS,
    DISTANCES,
    GEN,
    GEN_TABLE,
    METHOD_GEN,
    NO_ALPHA,
    NORM_INF,
    NORM_POST,
    NORM_PRE,
    PRESAMPLING,
    PROBE_GEN,
    WEIGHTINGS,
    is_baseline,
)

# Configuration keys in the order they appear in result tables. Names follow the paper:
# NORMpre, presampling, GEN (+ k), NORMpost, NORMinf, AGG (+ distance, weighting, m).
CHOICES = {
    "norm_pre": NORM_PRE,
    "presampling": PRESAMPLING,
    "gen": GEN,
    "norm_post": NORM_POST,
    "norm_inf": NORM_INF,
    "agg": AGG,
    "distance": DISTANCES,
    "weighting": WEIGHTINGS,
}
# Grid keys → default values when a grid leaves them out (the reference's defaults where
# they are sensible for a grid; `presampling_quantiles` holds [lo, hi] pairs).
GRID_DEFAULTS = {
    "seeds": [17121997, 123987, 12412312],
    "norm_pre": ["none"],
    "presampling": ["all"],
    "presampling_quantiles": [[0.0, 1.0]],
    "fewshot": [-1],
    "gen": ["mean"],
    "k": [1],
    "alpha": [0.5],  # GEN text_mean's weight of the text proxy (others ignore it)
    "norm_post": ["none"],
    "norm_inf": ["none"],
    "agg": ["max"],
    "distance": ["inner_product"],
    "weighting": ["uniform"],
    "m": [-1],
}
GRID_KEYS = tuple(GRID_DEFAULTS)
# The GENs whose k is fixed (GenSpec.fixed_k): one proxy per class, or every row.
_ONE_PROXY_GEN = [g.name for g in GEN_TABLE.values() if g.fixed_k == 1]
_EVERY_ROW_GEN = [g.name for g in GEN_TABLE.values() if g.fixed_k == -1]
PAPER_GRIDS = ("aggfixed", "aggfocus", "fig6", "fewshot", "multimodal")


class GridError(ValueError):
    """A grid file or mapping names an unknown key or an invalid value."""


def _check_part(part: Mapping, where: str) -> dict:
    unknown = sorted(set(part) - set(GRID_KEYS))
    if unknown:
        raise GridError(f"{where}: unknown grid key(s) {unknown}; allowed: {', '.join(GRID_KEYS)}")
    grid = {key: part.get(key, default) for key, default in GRID_DEFAULTS.items()}
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise GridError(f"{where}: grid key '{key}' must be a non-empty list, got {values!r}")
        if key in CHOICES:
            bad = [v for v in values if v not in CHOICES[key]]
            if bad:
                raise GridError(
                    f"{where}: grid key '{key}' has unknown value(s) {bad}; "
                    f"allowed: {', '.join(CHOICES[key])}"
                )
    for key in ("k", "m", "fewshot"):
        bad = [
            v
            for v in grid[key]
            if not isinstance(v, int) or isinstance(v, bool) or (v < 1 and v != -1)
        ]
        if bad:
            raise GridError(
                f"{where}: grid key '{key}' takes integers >= 1 or -1 (meaning all), got {bad}"
            )
    bad = [
        a
        for a in grid["alpha"]
        if not isinstance(a, int | float) or isinstance(a, bool) or not 0 <= a <= 1
    ]
    if bad:
        raise GridError(f"{where}: grid key 'alpha' takes numbers in [0, 1], got {bad}")
    for pair in grid["presampling_quantiles"]:
        ok = isinstance(pair, list | tuple) and len(pair) == 2
        if (
            not ok
            or not all(isinstance(q, int | float) for q in pair)
            or not 0 <= pair[0] < pair[1] <= 1
        ):
            raise GridError(
                f"{where}: 'presampling_quantiles' holds [lo, hi] pairs with 0 <= lo < hi <= 1, got {pair!r}"
            )
    bad = [s for s in grid["seeds"] if not isinstance(s, int) or isinstance(s, bool) or s < 0]
    if bad:
        raise GridError(f"{where}: 'seeds' must be non-negative integers, got {bad}")
    return grid


def _expand_part(grid: dict) -> pd.DataFrame:
    keys = [k for k in GRID_KEYS if k != "seeds"]
    rows = [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(grid[k] for k in keys))
    ]
    df = pd.DataFrame(rows, columns=keys)
    q = df.pop("presampling_quantiles")
    df["quantile_lo"] = [float(p[0]) for p in q]
    df["quantile_hi"] = [float(p[1]) for p in q]
    return filter_configurations(df)


def filter_configurations(df: pd.DataFrame) -> pd.DataFrame:
    """Apply the reference's rules, in the reference's order (the order changes the counts)."""
    df = df.copy()
    # α weighs text_mean's proxies only; the others hold a placeholder.
    df["alpha"] = df["alpha"].astype(float)
    df.loc[~df["gen"].isin(ALPHA_GEN), "alpha"] = NO_ALPHA
    is_max = df["agg"] == "max"
    # max ignores m and weighting (max with a distance is 1-nearest-proxy).
    df.loc[is_max, "m"] = -1
    df.loc[is_max, "weighting"] = "uniform"
    # mNN needs an m and a true distance.
    df = df[~((df["agg"] == "mnn") & (df["m"] == -1))]
    df = df[~((df["agg"] == "mnn") & (df["distance"] == "inner_product"))]
    # dinov2's exp(s/T) votes need a similarity: cosine only (an extension, not the reference's).
    df = df[~((df["weighting"] == "exp_similarity") & (df["distance"] != "cosine"))]
    # The linear probe's scores are its logits (weights and biases): AGG max with the inner
    # product over its own weights only (an extension, not the reference's).
    # So are the named incremental methods' (FeCAM, RanPAC, FeTrIL): classifiers of their own.
    is_probe = df["gen"].isin([PROBE_GEN, *METHOD_GEN])
    df = df[
        ~(
            is_probe
            & (
                (df["agg"] != "max")
                | (df["distance"] != "inner_product")
                | (df["norm_post"] != "none")
            )
        )
    ]
    # m larger than k proxies for each of 10 classes is dropped (before k is forced below).
    df = df[~((df["m"] > df["k"] * 10) & (df["k"] > 0))]
    df = df.copy()
    # 'all' presampling ignores the quantiles; weibull over the whole range is 'all'.
    df.loc[df["presampling"] == "all", ["quantile_lo", "quantile_hi"]] = [0.0, 1.0]
    df = df[
        ~(
            (df["presampling"] == "weibull")
            & (df["quantile_lo"] == 0.0)
            & (df["quantile_hi"] == 1.0)
        )
    ]
    df = df.copy()
    # A GEN of one proxy per class gets k = 1; k = -1 (every row) only makes sense for a GEN
    # that always takes every row, and it gets k = -1.
    df.loc[df["gen"].isin(_ONE_PROXY_GEN), "k"] = 1
    df = df[~((df["k"] == -1) & ~df["gen"].isin(_EVERY_ROW_GEN))]
    df = df.copy()
    df.loc[df["gen"].isin(_EVERY_ROW_GEN), "k"] = -1
    # NORMpre other than none is kept only together with the same NORMinf; NORMinf center_l2
    # centres by the training rows' mean, so it needs NORMpre center_l2 (an extension).
    df = df[~((df["norm_pre"] != "none") & (df["norm_inf"] != df["norm_pre"]))]
    df = df[~((df["norm_inf"] == "center_l2") & (df["norm_pre"] != "center_l2"))]
    df = df.copy()
    # Fewer few-shot samples than k: k drops to the number of samples.
    low = (df["fewshot"] != -1) & (df["fewshot"] < df["k"])
    df.loc[low, "k"] = df.loc[low, "fewshot"]
    df = df.drop_duplicates(subset=list(CONFIG_KEYS))
    return df[list(CONFIG_KEYS)].reset_index(drop=True)


def config_id(row: Mapping) -> str:
    """A stable 12-hex-digit ID of one configuration (seed excluded), from its key values.

    α counts only where the GEN reads it, so every configuration without one keeps the ID it
    had before α was a key."""
    keys = [k for k in CONFIG_KEYS if k != "alpha" or row["gen"] in ALPHA_GEN]
    canonical = json.dumps({k: _plain(row[k]) for k in keys}, sort_keys=True)
    return hashlib.sha1(canonical.encode()).hexdigest()[:12]


def _plain(v):
    return v.item() if hasattr(v, "item") else v


def expand_grid(grid: Mapping | list, where: str = "grid", with_seeds: bool = True) -> pd.DataFrame:
    """Expand a grid (a mapping, a list of mappings, or {'parts': [...]}) into configurations.

    Returns one row per configuration (and per seed, with `with_seeds`), columns
    `config_id`, CONFIG_KEYS and `seed`, in a deterministic order.
    """
    parts = grid.get("parts") if isinstance(grid, Mapping) and "parts" in grid else grid
    if isinstance(parts, Mapping):
        parts = [parts]
    if not isinstance(parts, list) or not parts:
        raise GridError(
            f"{where}: a grid is a mapping of keys to value lists, or a non-empty list of them"
        )
    frames, seeds_per_part = [], []
    for i, part in enumerate(parts):
        name = where if len(parts) == 1 else f"{where} (part {i + 1})"
        if not isinstance(part, Mapping):
            raise GridError(
                f"{name}: expected a mapping of grid keys to lists, got {type(part).__name__}"
            )
        checked = _check_part({k: v for k, v in part.items() if k != "name"}, name)
        df = _expand_part(checked)
        frames.append(df)
        seeds_per_part.append([checked["seeds"]] * len(df))
    configs = pd.concat(frames, ignore_index=True)
    if configs.empty:
        raise GridError(
            f"{where}: the grid expands to no configuration after the reference's filtering "
            "rules: NORMpre l2 needs NORMinf l2; mnn needs an m other than -1 and a distance "
            "other than inner_product; weighting exp_similarity needs distance cosine; m may "
            "be at most 10 × k; k = -1 goes with GEN all only; weibull needs quantiles other "
            "than [0, 1]; linear_probe, fecam, ranpac and fetril need AGG max, distance "
            "inner_product and NORMpost none; NORMinf center_l2 needs NORMpre center_l2"
        )
    # A configuration two parts both give runs with the union of their seeds (first-seen
    # order), not only the first part's.
    seeds_of: dict[tuple, list] = {}
    for key, seeds in zip(
        configs[list(CONFIG_KEYS)].itertuples(index=False, name=None),
        (s for part in seeds_per_part for s in part),
        strict=True,
    ):
        merged = seeds_of.setdefault(key, [])
        merged.extend(s for s in seeds if s not in merged)
    configs = configs.drop_duplicates(subset=list(CONFIG_KEYS)).reset_index(drop=True)
    configs["seeds"] = [
        seeds_of[key] for key in configs[list(CONFIG_KEYS)].itertuples(index=False, name=None)
    ]
    configs.insert(0, "config_id", [config_id(r) for r in configs.to_dict("records")])
    if not with_seeds:
        return configs.drop(columns="seeds")
    configs = configs.explode("seeds", ignore_index=True).rename(columns={"seeds": "seed"})
    configs["seed"] = configs["seed"].astype("int64")
    for key in ("k", "m", "fewshot"):
        configs[key] = configs[key].astype("int64")
    return configs


def load_grid(source: str | Path) -> tuple[str, dict | list]:
    """Read a grid: a YAML file path, or `paper:<name>` for a packaged paper grid."""
    source = str(source)
    if source.startswith("paper:"):
        name = source.split(":", 1)[1]
        if name not in PAPER_GRIDS:
            raise GridError(f"unknown paper grid '{name}'; available: {', '.join(PAPER_GRIDS)}")
        text = resources.files("imprint.engine").joinpath(f"grids/{name}.yaml").read_text()
    else:
        path = Path(source)
        if not path.exists():
            raise GridError(f"{path}: no such grid file")
        text = path.read_text()
    from imprint.io import load_yaml_text

    try:
        grid = load_yaml_text(text, source)  # a key given twice is refused, with its line
    except ValueError as err:
        raise GridError(str(err)) from None
    return source, grid


def describe_config(row: Mapping) -> str:
    """A short human label: NORMpre / GEN(k) / NORMpost / NORMinf / AGG, presampling if any."""
    spec = GEN_TABLE.get(row["gen"])
    fixed = spec is not None and spec.fixed_k is not None  # k says nothing: left out
    gen = row["gen"] if fixed else f"{row['gen']}(k={row['k']})"
    if row["gen"] in ALPHA_GEN:
        gen = f"{row['gen']}(α={float(row['alpha']):g})"
    if row["agg"] == "max":
        agg = "max" if row["distance"] == "inner_product" else f"max-{row['distance']}"
    else:
        agg = f"mnn(m={row['m']})-{row['distance']}" + {
            "weighted_by_distance": "-w",
            "exp_similarity": "-exp",
        }.get(row["weighting"], "")
    parts = [row["norm_pre"], gen, row["norm_post"], row["norm_inf"], agg]
    if row["presampling"] == "weibull":
        parts.insert(1, f"weibull[{row['quantile_lo']:g},{row['quantile_hi']:g}]")
    if row["fewshot"] != -1:
        parts.insert(1, f"n={row['fewshot']}")
    return " / ".join(str(p) for p in parts) + (BASELINE_MARK if is_baseline(row) else "")


def describe_values(row: Mapping, keys: Sequence[str]) -> str:
    """'key=value, ...' of a configuration's `keys` (a CD diagram's group labels).

    m and the weighting are left out for AGG max, where the grid holds placeholders for them.
    """
    return ", ".join(
        f"{k}={row[k]}" for k in keys if not (k in ("m", "weighting") and row["agg"] == "max")
    )
