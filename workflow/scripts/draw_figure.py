"""Every per-experiment figure rule (rules/figures.smk): draw one registered kind, write its outputs."""

from _common import rule_log

from imprint.api.figures import draw_figure

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    draw_figure(
        sm.params.kind,
        dict(sm.input.items()),
        dict(sm.output.items()),
        options=sm.params.options,
        experiment=sm.wildcards.experiment,
    )
