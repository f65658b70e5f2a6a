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
        backbone=wc.backbone,
        ls_lambda=sm.params.ls_lambda,  # None: the registry's λ for this backbone
        ls_precision=sm.params.ls_precision or "float64",  # None: the grid has no ls/kls
        progress=True,
        extra_columns={
            "experiment": wc.experiment,
            "dataset": wc.dataset,
            "backbone": wc.backbone,
            "mapping": wc.mapping,
            "task": wc.task,
        },
    )
