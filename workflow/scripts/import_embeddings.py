"""Rule import_embeddings: check a backbone's own embedding file and copy it into results/."""

from _common import rule_log

from imprint.io import import_embeddings
from imprint.planning.paths import embedding_dirs

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    wc = sm.wildcards
    classes = list(sm.params.classes) if sm.params.classes is not None else None
    out = import_embeddings(
        sm.input[0],
        embedding_dirs(sm.output)[0],
        classes=classes,
        meta={"backbone": wc.backbone, "dataset": wc.dataset, "split": wc.split},
    )
    print(f"imported {sm.input[0]} as {out}")
