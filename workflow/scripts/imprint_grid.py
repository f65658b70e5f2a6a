"""Rule imprint_grid: evaluate an experiment's grid on a batch of (mapping, task) groups of one
(dataset, backbone) in one process (planning.batches; a batch is often a single group)."""

from _common import rule_log

from imprint.api.evaluation import evaluate_groups, incremental_groups
from imprint.planning.paths import embedding_dirs

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    import torch

    torch.set_num_threads(max(1, sm.threads))
    wc = sm.wildcards
    grid = sm.input.grid_file if sm.input.get("grid_file") else sm.params.grid
    names = {"experiment": wc.experiment, "dataset": wc.dataset, "backbone": wc.backbone}
    groups = [
        {
            "classes": list(group["classes"]),
            "mapping": dict(group["mapping"]) or None,
            "extra_columns": names | {"mapping": group["name"], "task": group["task"]},
        }
        for group in sm.params.groups
    ]
    train, test = embedding_dirs(sm.input.train)[0], embedding_dirs(sm.input.test)[0]
    grid = dict(grid) if isinstance(grid, dict) else grid
    # The classes' text proxies, where the grid has GEN text or text_mean.
    text = embedding_dirs(sm.input.text)[0] if sm.input.get("text") else None
    if sm.params.incremental:  # classes arrive session by session (engine/incremental.py)
        incremental_groups(
            train, test, grid, sm.output[0], dict(sm.params.incremental), groups, text_proxies=text
        )
    else:
        evaluate_groups(
            train,
            test,
            grid,
            sm.output[0],
            groups,
            # Both None unless the grid has GEN ls/kls (planning resolves λ for the backbone).
            ls_lambda=sm.params.ls_lambda,
            ls_precision=sm.params.ls_precision,
            progress=True,
            text_proxies=text,
        )
