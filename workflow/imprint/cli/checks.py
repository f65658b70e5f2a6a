"""The commands that check what is there: verify (embedding caches), check-config."""

from __future__ import annotations

import sys


def _verify_flags(parser) -> None:
    parser.add_argument(
        "paths", nargs="*", default=["results"], metavar="PATH", help="default: results"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _verify(args) -> None:
    """re-check the checksums of the embedding sets below folders (default results/)

    Find every embedding set (a folder holding meta.json, embeddings.npy or labels.npy; one
    missing some is reported) below each PATH and re-hash its array files against the
    checksums in its meta.json, also comparing meta's n × dim with each array's header:
    corruption that keeps a file's modification time (bit rot, a bad copy) is invisible to
    `snakemake -n`. Prints one line per corrupted set naming the file, what is wrong and the
    command that rebuilds it, one warning per set without checksums, and a summary. Exit
    status: 0 every set verified (or unverifiable), 1 a set is corrupted, 2 a PATH cannot be
    read."""
    from imprint.planning.caches import verify_embedding_sets

    report = verify_embedding_sets(args.paths, progress=not args.quiet)
    for line in report.warning_lines():
        print(f"imprint verify: warning: {line}", file=sys.stderr)
    for line in report.problem_lines():
        print(line)
    print(report.summary())
    if report.corrupted:
        raise SystemExit(1)  # 2 is main's: a PATH that cannot be read


def _check_config(args) -> None:
    """check a workflow config file as `snakemake -n` would (YAML, schema, names)

    Check a workflow config (config.yaml or a --configfile) without planning the workflow:
    YAML errors with line and column, unknown keys with the allowed ones, names no section
    defines, backbones the registry lacks."""
    from imprint.planning.checks import check_config_file

    config = check_config_file(args.config)
    print(f"{args.config}: valid ({len(config['experiments'])} experiment(s))")


# name -> (its flags, what it runs: the first line of its docstring is the command's help,
# the rest its description).
COMMANDS = {
    "verify": (_verify_flags, _verify),
    "check-config": (
        lambda parser: parser.add_argument("config", help="the config file (YAML)"),
        _check_config,
    ),
}
