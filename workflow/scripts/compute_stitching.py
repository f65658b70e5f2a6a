"""Rule compute_stitching: every ordered pair of backbones stitched on one dataset."""

from _common import rule_log

from imprint.api.stitching import stitch_files
from imprint.planning.paths import embedding_dirs

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    import torch

    torch.set_num_threads(max(1, sm.threads))
    options = sm.params.options
    table, _ = stitch_files(
        embedding_dirs(list(sm.input.train)),
        embedding_dirs(list(sm.input.test)),
        out=sm.output.table,
        ranks_out=sm.output.ranks,
        names=list(sm.params.backbones),
        rows=options["rows"],
        seed=options["seed"],
        norms=options["norms"],
        extra_columns={"dataset": sm.wildcards.dataset},
    )
    print(table.to_string(index=False))
