"""Rule gather_results: stack an experiment's per-group results tables into one."""

from _common import rule_log

from imprint.api.evaluation import gather_tables

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    table = gather_tables(list(sm.input), sm.output[0])
    print(f"{len(sm.input)} tables, {len(table)} rows → {sm.output[0]}")
