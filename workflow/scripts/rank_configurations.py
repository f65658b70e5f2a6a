"""Rule rank_configurations: average ranks of every configuration, CD statistics of the best."""

import pandas as pd
from _common import rule_log, save_figure

from imprint.cd_diagram import plot_cd_diagram
from imprint.grid import CONFIG_KEYS, describe_config
from imprint.io import write_table
from imprint.stats import (
    average_ranks,
    critical_difference,
    describe_friedman,
    friedman,
    score_matrix,
)

GROUPS = ["backbone", "dataset", "mapping", "task"]

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    results = pd.read_parquet(sm.input[0])
    labels = results.drop_duplicates("config_id").set_index("config_id")
    names = {i: describe_config(r) for i, r in labels.iterrows()}
    if len(set(names.values())) < len(names):  # labels are short; IDs keep them apart
        names = {i: f"{name} [{i[:6]}]" for i, name in names.items()}
    results["method"] = results["config_id"].map(names)
    # Ranks over every configuration; the pairwise tests (quadratic in the number of methods)
    # and the diagram cover the best `max_methods` of them, ranked again among themselves.
    scores, dropped = score_matrix(results, "method", "accuracy", GROUPS, seed_col="seed")
    ranks, _ = average_ranks(scores)
    ranks = ranks.merge(
        results.drop_duplicates("method")[["method", "config_id", *CONFIG_KEYS]],
        on="method",
        how="left",
    )
    write_table(ranks, sm.output.ranks)
    best = ranks["method"].head(sm.params.max_methods).tolist()
    subset = results[results["method"].isin(best)]
    result = critical_difference(subset, "method", "accuracy", GROUPS, seed_col="seed")
    write_table(result.pvalues.reset_index(names="method"), sm.output.pvalues)
    n_all = ranks.shape[0]
    # SPEC §7: the omnibus test covers every configuration, not only the diagram's best.
    header = (
        f"{n_all} configurations ranked over {scores.shape[0]} groups. Over all of them: "
        f"{describe_friedman(*friedman(scores))}\n"
        f"Pairwise tests and the diagram: the best {len(best)}, ranked again among themselves.\n"
    )
    with open(sm.output.summary, "w") as fh:
        fh.write(header + result.summary + "\n")
    print(header + result.summary)
    fig = plot_cd_diagram(
        result, title=f"{sm.wildcards.experiment}: best {len(best)} of {n_all} configurations"
    )
    save_figure(fig, sm.output.pdf, sm.output.png)
