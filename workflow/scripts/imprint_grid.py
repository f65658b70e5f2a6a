"""Rule imprint_grid: evaluate an experiment's grid on one (dataset, backbone, mapping, task)."""

from _common import rule_log

from imprint.api import evaluate_files

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    import torch

    torch.set_num_threads(max(1, sm.threads))
    wc = sm.wildcards
    grid = sm.input.grid_file if sm.input.get("grid_file") else sm.params.grid
    # None: the grid has no ls/kls; a dict where the config sets the backbone's λ (else the
    # registry's λ is used).
    ls = sm.params.ls_precision
    ls_precision, ls_lambda = (
        (ls["precision"], ls["ls_lambda"]) if isinstance(ls, dict) else (ls, None)
    )
    evaluate_files(
        sm.input.train,
        sm.input.test,
        dict(grid) if isinstance(grid, dict) else grid,
        sm.output[0],
        classes=list(sm.params.classes),
        mapping=dict(sm.params.mapping) or None,
        backbone=wc.backbone,
        ls_lambda=ls_lambda,
        ls_precision=ls_precision or "float64",
        progress=True,
        extra_columns={
            "experiment": wc.experiment,
            "dataset": wc.dataset,
            "backbone": wc.backbone,
            "mapping": wc.mapping,
            "task": wc.task,
        },
    )
