"""Rule imprint_grid: evaluate an experiment's grid on one (dataset, backbone, mapping, task)."""

from _common import rule_log

from imprint.api import evaluate_files

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    import torch

    torch.set_num_threads(max(1, sm.threads))
    wc = sm.wildcards
    grid = sm.input.grid_file if sm.input.get("grid_file") else sm.params.grid
    evaluate_files(
        sm.input.train,
        sm.input.test,
        dict(grid) if isinstance(grid, dict) else grid,
        sm.output[0],
        classes=list(sm.params.classes),
        mapping=dict(sm.params.mapping) or None,
        # Both None unless the grid has GEN ls/kls (planning resolves λ for the backbone).
        ls_lambda=sm.params.ls_lambda,
        ls_precision=sm.params.ls_precision,
        progress=True,
        extra_columns={
            "experiment": wc.experiment,
            "dataset": wc.dataset,
            "backbone": wc.backbone,
            "mapping": wc.mapping,
            "task": wc.task,
        },
    )
