"""Rules plot_transferability, plot_similarity and plot_stitching: the model-choice figures."""

from _common import rule_log

from imprint.api.figures import plot_model_choice

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    plot_model_choice(sm.params.kind, dict(sm.input.items()), dict(sm.output.items()))
