"""Rule join_embeddings: concatenate the sources of a joined dataset, offsetting their labels."""

import numpy as np
from _common import rule_log

from imprint.io import load_embeddings, save_embeddings

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    parts = [load_embeddings(p) for p in sm.input]
    dims = {p.dim for p in parts}
    if len(dims) != 1:
        raise ValueError(
            f"sources of {sm.wildcards.dataset} have different embedding sizes {sorted(dims)}"
        )
    x = np.concatenate([np.asarray(p.embeddings) for p in parts])
    y = np.concatenate([p.labels + off for p, off in zip(parts, sm.params.offsets, strict=True)])
    meta = {
        **parts[0].meta,
        "dataset": sm.wildcards.dataset,
        "sources": [p.meta.get("dataset") for p in parts],
        "label_offsets": list(sm.params.offsets),
    }
    save_embeddings(sm.output[0], x, y, meta)
    print(f"joined {len(parts)} sources: {x.shape[0]} embeddings")
