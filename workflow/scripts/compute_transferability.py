"""Rule compute_transferability: the estimators of one group's training embeddings."""

from _common import rule_log

from imprint.api.model_choice import transferability_file
from imprint.planning.paths import embedding_dirs

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    embeddings, mapping = embedding_dirs(sm.input.embeddings)[0], dict(sm.params.mapping)
    classes = list(sm.params.classes)
    estimates = transferability_file(embeddings, sm.output[0], mapping or None, classes)
    print(estimates)
