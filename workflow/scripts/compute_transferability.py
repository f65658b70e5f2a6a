"""Rule compute_transferability: the estimators of one group's training embeddings."""

from _common import rule_log

from imprint.model_choice import transferability_file
from imprint.planning.paths import embedding_dirs

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    estimates = transferability_file(
        embedding_dirs(sm.input.embeddings)[0],
        out=sm.output[0],
        mapping=dict(sm.params.mapping) or None,
        classes=list(sm.params.classes),
    )
    print(estimates)
