"""Rule compute_similarity: linear CKA between every pair of backbones on one dataset."""

from _common import rule_log

from imprint.api.model_choice import similarity_files
from imprint.planning.paths import embedding_dirs

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    table = similarity_files(
        embedding_dirs(list(sm.input)),
        out=sm.output[0],
        names=list(sm.params.backbones),
        extra_columns={"dataset": sm.wildcards.dataset},
    )
    print(table.to_string(index=False))
