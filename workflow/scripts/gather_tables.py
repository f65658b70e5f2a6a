"""Rules gather_results / gather_collapse: stack per-group tables (Parquet or JSON) into one."""

import json
from pathlib import Path

import pandas as pd
from _common import rule_log

from imprint.io import write_table

with rule_log(snakemake):  # noqa: F821
    sm = snakemake  # noqa: F821
    frames = []
    for path in map(Path, sm.input):
        if path.suffix == ".json":
            row = json.loads(path.read_text())
            # results/collapse/<dataset>/<backbone>/<mapping>.json
            row.update(
                dataset=path.parent.parent.name, backbone=path.parent.name, mapping=path.stem
            )
            frames.append(pd.DataFrame([row]))
        else:
            frames.append(pd.read_parquet(path))
    table = pd.concat(frames, ignore_index=True)
    write_table(table, sm.output[0])
    print(f"{len(sm.input)} tables, {len(table)} rows → {sm.output[0]}")
