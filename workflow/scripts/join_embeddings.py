"""Rule join_embeddings: concatenate the sources of a joined dataset, offsetting their labels."""

from _common import rule_log

from imprint.api import join_embeddings

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    n = join_embeddings(list(sm.input), sm.output[0], list(sm.params.offsets), sm.wildcards.dataset)
    print(f"joined {len(sm.input)} sources: {n} embeddings")
