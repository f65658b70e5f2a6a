"""The `imprint` command's parser, and how it reports: one line per error or warning."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

from imprint import __version__
from imprint.cli import checks, data, imprinting, model_choice

# Every command, in the order --help lists them: the paper's pipeline, the questions beyond
# it, the checks. A command is one entry in its module's COMMANDS.
COMMANDS = {**data.COMMANDS, **imprinting.COMMANDS, **model_choice.COMMANDS, **checks.COMMANDS}

DESCRIPTION = "Evaluate grids, count configurations, measure collapse, rank methods."


class _Parser(argparse.ArgumentParser):
    """argparse with its errors in one line, as every other refusal of this command."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_force(parsers) -> None:
    """--force on every command that writes: an output path is otherwise refused where it
    would replace what the command did not write (imprint.outputs.check_output)."""
    for parser in parsers:
        if any(a.dest in ("out", "out_prefix") for a in parser._actions):
            parser.add_argument(
                "--force",
                action="store_true",
                help="replace what is at the output path even if this command did not write "
                "it (a folder of other files, a file of another kind, a link); never one of "
                "its inputs",
            )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="imprint", description=DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    for name, (flags, run) in COMMANDS.items():
        summary, _, details = run.__doc__.partition("\n\n")
        command = sub.add_parser(
            name, help=summary, description=" ".join(details.split()) or summary
        )
        flags(command)
        command.set_defaults(func=run)
    _add_force(sub.choices.values())
    return parser


def main(argv: list[str] | None = None) -> int:
    from imprint.outputs import exit_cleanly_on_sigterm

    args = build_parser().parse_args(argv)
    exit_cleanly_on_sigterm()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    with warnings.catch_warnings():
        # A valid but surprising input gets one line, not Python's two-line warning format;
        # each distinct warning once.
        warnings.simplefilter("default")
        warnings.simplefilter("ignore", ResourceWarning)  # numpy's, on a file it fails to read
        warnings.showwarning = lambda message, *_, **__: print(
            f"imprint {args.command}: warning: {message}", file=sys.stderr
        )
        try:
            args.func(args)
        # OSError: missing files, permissions, a full disk; ImportError: an optional extra missing
        except (ValueError, OSError, ImportError) as err:
            print(f"imprint {args.command}: error: {_one_line(err)}", file=sys.stderr)
            return 2
    return 0


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return " ".join(str(err).split("\n"))
