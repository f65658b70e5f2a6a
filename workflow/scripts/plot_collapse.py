"""Rule plot_collapse: NC1 and VCI per backbone, dataset and mapping."""

from _common import rule_log

from imprint.api.figures import plot_collapse

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    plot_collapse(sm.input.collapse, dict(sm.output.items()))
