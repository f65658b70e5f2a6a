"""Rule gather_transferability: the estimates beside the accuracies, and their weighted τ."""

from _common import rule_log

from imprint.api.model_choice import gather_transferability

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    table, agreement = gather_transferability(
        list(sm.input.estimates),
        sm.params.groups,
        list(sm.input.results),
        sm.output.table,
        sm.output.agreement,
    )
    print(agreement[agreement["task"] == "mean"].to_string(index=False))
