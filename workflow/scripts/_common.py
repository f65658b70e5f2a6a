"""Shared by the rule scripts: send output to the rule's log, save figures atomically."""

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


def save_figure(fig, pdf: str, png: str) -> None:
    from imprint.io import atomic_path

    for path, fmt in ((pdf, "pdf"), (png, "png")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=200, bbox_inches="tight")
