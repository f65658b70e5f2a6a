"""Rule gather_collapse: one row per (dataset, backbone, mapping) of collapse metrics."""

from _common import rule_log

from imprint.api.collapse import gather_collapse

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    table = gather_collapse(list(sm.input), sm.params.groups, sm.output[0])
    print(f"{len(table)} collapse rows → {sm.output[0]}")
