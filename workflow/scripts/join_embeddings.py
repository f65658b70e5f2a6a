"""Rule join_embeddings: concatenate the sources of a joined dataset, offsetting their labels."""

from _common import rule_log

from imprint.api.data import join_embeddings
from imprint.planning.paths import embedding_dirs

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    sources = embedding_dirs(sm.input)
    out = embedding_dirs(sm.output)[0]
    n = join_embeddings(sources, out, list(sm.params.offsets), sm.wildcards.dataset)
    print(f"joined {len(sources)} sources: {n} embeddings")
