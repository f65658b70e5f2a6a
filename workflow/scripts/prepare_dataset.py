"""Rule prepare_dataset: download (or find) a registry dataset and record its sizes."""

import json

from _common import rule_log

from imprint.data.datasets import build_dataset, dataset_targets
from imprint.io import atomic_path

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    source = sm.wildcards.source
    manifest = {"dataset": source, "data_dir": sm.params.data_dir}
    for split in ("train", "test"):
        ds = build_dataset(
            source,
            sm.params.data_dir,
            split,
            download=sm.params.download,
            classes=sm.params.classes,
        )
        labels = dataset_targets(ds)
        manifest[split] = {"n": int(labels.shape[0]), "classes": sorted({int(v) for v in labels})}
        print(
            f"{source} {split}: {labels.shape[0]} images, {len(manifest[split]['classes'])} classes"
        )
    with atomic_path(sm.output[0]) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
