"""Shared by the rule scripts: send their output to the rule's log."""

from __future__ import annotations

import contextlib
import logging
import sys


@contextlib.contextmanager
def rule_log(snakemake):
    """Route stdout, stderr and logging into the rule's log file for the block."""
    from imprint.io import exit_cleanly_on_sigterm

    exit_cleanly_on_sigterm()  # a SLURM time limit must not leave temporary outputs behind
    path = snakemake.log[0] if snakemake.log else None
    if path is None:
        yield
        return
    with open(path, "w") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        logging.basicConfig(
            stream=fh,
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(message)s",
            force=True,
        )
        try:
            yield
        except Exception:
            logging.exception("rule failed")
            raise
        finally:
            fh.flush()
    sys.stderr.flush()
