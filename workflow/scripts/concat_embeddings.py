"""Rule concat_embeddings: one backbone's embeddings as the concatenation of others'."""

from _common import rule_log

from imprint.api.data import concat_embeddings
from imprint.planning.paths import embedding_dirs

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    n = concat_embeddings(
        embedding_dirs(list(sm.input)),
        embedding_dirs(sm.output)[0],
        list(sm.params.parts),
        sm.params.normalise,
        {"backbone": sm.wildcards.backbone},
    )
    print(f"joined {len(sm.params.parts)} parts by image id: {n} embeddings")
