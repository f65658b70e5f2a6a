"""Rule rank_configurations: average ranks of every configuration, CD statistics of a selection."""

import pandas as pd
from _common import rule_log, save_figure

from imprint.figures.cd_diagram import plot_cd_diagram
from imprint.engine.grid import CONFIG_KEYS, describe_config, describe_values
from imprint.io import write_table
from imprint.analysis.stats import (
    average_ranks,
    best_per_value,
    critical_difference,
    describe_cliques,
    describe_friedman,
    friedman,
    score_matrix,
)

GROUPS = ["backbone", "dataset", "mapping", "task"]

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    options = sm.params.options
    excluded = options["exclude_gen"]
    highlight = options["highlight"]
    results = pd.read_parquet(sm.input[0])
    # ls and kls are the oracle (fitted on every class at once): not ranked with imprinting.
    results = results[~results["gen"].isin(excluded)]
    if results.empty:
        raise ValueError(f"no results left to rank after leaving out gen {excluded}")
    labels = results.drop_duplicates("config_id").set_index("config_id")
    names = {i: describe_config(r) for i, r in labels.iterrows()}
    if len(set(names.values())) < len(names):  # labels are short; IDs keep them apart
        names = {i: f"{name} [{i[:6]}]" for i, name in names.items()}
    results["method"] = results["config_id"].map(names)
    # Ranks over every configuration; the pairwise tests (quadratic in the number of methods)
    # and the diagram cover a selection, ranked again among themselves.
    scores, dropped = score_matrix(results, "method", "accuracy", GROUPS, seed_col="seed")
    ranks, _ = average_ranks(scores)
    ranks = ranks.merge(
        results.drop_duplicates("method")[["method", "config_id", *CONFIG_KEYS]],
        on="method",
        how="left",
    )
    write_table(ranks, sm.output.ranks)
    if highlight:
        # As the paper's diagrams: the best configuration of each value of the highlighted
        # component(s), e.g. one per GEN.
        best = best_per_value(ranks, highlight)
        shown = {}
        for _, r in best.iterrows():
            values = describe_values(r, highlight)
            shown[r["method"]] = f"{values}: {r['method']}" if values else r["method"]
        selection = f"the best configuration per {' × '.join(highlight)}"
    else:
        best = ranks.head(options["max_methods"])
        shown = {m: m for m in best["method"]}
        selection = f"the best {len(best)}"
    subset = results[results["method"].isin(shown)].assign(
        method=lambda df: df["method"].map(shown)
    )
    result = critical_difference(subset, "method", "accuracy", GROUPS, seed_col="seed")
    write_table(result.pvalues.reset_index(names="method"), sm.output.pvalues)
    n_all = ranks.shape[0]
    left_out = f" (gen {', '.join(excluded)} left out)" if excluded else ""
    # SPEC §7: the omnibus test covers every configuration, not only the diagram's selection.
    header = (
        f"{n_all} configurations{left_out} ranked over {scores.shape[0]} groups. Over all of "
        f"them: {describe_friedman(*friedman(scores))}\n"
        f"Pairwise tests and the diagram: {selection} ({len(shown)}), ranked again among "
        "themselves.\n"
    )
    text = f"{header}{result.summary}\n{describe_cliques(result.cliques)}\n"
    with open(sm.output.summary, "w") as fh:
        fh.write(text)
    print(text)
    fig = plot_cd_diagram(
        result,
        title=f"{sm.wildcards.experiment}: {selection} ({len(shown)} of {n_all} configurations)",
    )
    save_figure(fig, sm.output.pdf, sm.output.png)
