"""Shared by the rule scripts: send their output to the rule's log."""

from __future__ import annotations

import contextlib
import logging
import sys


@contextlib.contextmanager
def rule_log(snakemake):
    """Route stdout, stderr and logging into the rule's log file for the block.

    An EmbeddingFileError (a ChecksumError included) is expected and the user's to fix: the job
    ends with its message alone, written to the log and to Snakemake's console (several lines
    only where it lists several files), and exit status 1. Any other exception is a bug until
    shown otherwise: its full traceback goes to the log and, raised on, to the console. A plain
    ValueError is one of those: the config and the user's files are checked when the workflow
    is planned and imported, so inside a job it is mostly numpy's, pandas' or torch's own.
    """
    from imprint.io import EmbeddingFileError
    from imprint.outputs import exit_cleanly_on_sigterm

    exit_cleanly_on_sigterm()  # a SLURM time limit must not leave temporary outputs behind
    console = sys.stderr  # the job's own stderr: Snakemake's console
    path = snakemake.log[0] if snakemake.log else None
    failure = None
    with contextlib.ExitStack() as stack:
        if path is not None:
            fh = stack.enter_context(open(path, "w"))
            stack.enter_context(contextlib.redirect_stdout(fh))
            stack.enter_context(contextlib.redirect_stderr(fh))
            stack.callback(fh.flush)
            logging.basicConfig(
                stream=fh,
                level=logging.INFO,
                format="%(asctime)s %(levelname)s %(message)s",
                force=True,
            )
        try:
            yield
        except EmbeddingFileError as err:
            failure = str(err)
            if path is not None:
                logging.error("%s", failure)
        except Exception:
            if path is not None:
                logging.exception("rule failed")
            raise
    if failure is not None:
        print(failure, file=console, flush=True)
        sys.exit(1)
    sys.stderr.flush()
