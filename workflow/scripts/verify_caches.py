"""Rule verify_caches: re-hash every cached embedding set against its meta.json checksums."""

from pathlib import Path

from _common import rule_log

from imprint.io import ChecksumError
from imprint.planning.caches import verify_embedding_sets

with rule_log(snakemake):  # noqa: F821
    root = Path(snakemake.params.root)  # noqa: F821
    report = verify_embedding_sets([root] if root.is_dir() else [])
    for line in report.warning_lines():
        print(f"warning: {line}")
    if report.corrupted:  # listed in the log and on the console, one line per set
        raise ChecksumError("\n".join([*report.problem_lines(), report.summary()]))
    print(report.summary())
