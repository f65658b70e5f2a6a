"""Rule prepare_dataset: download (or find) a registry dataset and record its sizes."""

from _common import rule_log

from imprint.api.data import prepare_dataset

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    prepare_dataset(
        sm.wildcards.source,
        sm.params.data_dir,
        sm.output[0],
        download=sm.params.download,
        classes=sm.params.classes,
    )
