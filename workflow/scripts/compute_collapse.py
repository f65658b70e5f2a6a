"""Rule compute_collapse: NC metrics of L2-normalised training embeddings under a mapping."""

from _common import rule_log

from imprint.api.collapse import collapse_file
from imprint.planning.paths import embedding_dirs

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    embeddings, mapping = embedding_dirs(sm.input.embeddings)[0], dict(sm.params.mapping)
    metrics = collapse_file(embeddings, out=sm.output[0], mapping=mapping or None)
    print(
        {k: metrics[k] for k in ("nc1", "nc1_reference_centring", "vci", "n_classes", "n_samples")}
    )
