"""The commands of the paper's pipeline: evaluate, grid, incremental, collapse, cd."""

from __future__ import annotations

import json

from imprint.cli import common
from imprint.engine.tasks import TASK_SPLITS, parse_classes
from imprint.engine.vocabulary import DEFAULT_LS_PRECISION, GROUP_COLUMNS, LS_PRECISIONS


def _evaluate_flags(ev) -> None:
    common.add_files(ev, grid=True)
    ev.add_argument(
        "--task",
        help="task classes after remapping: comma-separated ids, or one of the paper's splits "
        f"of classes 0-9 ({', '.join(TASK_SPLITS)}); default: every class of the training file",
    )
    ev.add_argument(
        "--mapping", help="YAML/JSON file {old label: new label}; labels it leaves out are dropped"
    )
    ev.add_argument(
        "--ls-lambda", type=float, help="ridge λ for GEN ls/kls (default: the backbone's)"
    )
    ev.add_argument(
        "--ls-precision",
        choices=LS_PRECISIONS,
        default=DEFAULT_LS_PRECISION,
        help=f"ls/kls arithmetic: float64 solve or float32, the reference's explicit float32 "
        f"inverse (to reproduce its numbers); default {DEFAULT_LS_PRECISION}",
    )
    ev.add_argument(
        "--backbone", help="backbone name, to look up λ when the files do not record it"
    )
    _text_flag(ev)
    common.add_run_options(ev, quiet=True)


def _text_flag(parser) -> None:
    parser.add_argument(
        "--text-proxies",
        help="the classes' text proxies (an embedding set made by `imprint text-proxies`), "
        "which GEN text and text_mean read",
    )


def _evaluate(args) -> None:
    """evaluate every configuration of a grid on one task

    Imprint and score every configuration × seed of a grid on one task of a training and a
    test embedding file (.npz with arrays 'embeddings' [N, D] float and 'labels' [N] int, or
    an embedding directory written by the workflow)."""
    from imprint.api.evaluation import evaluate_files

    evaluate_files(
        args.train,
        args.test,
        args.grid,
        args.out,
        classes=parse_classes(args.task) if args.task is not None else None,
        mapping=args.mapping,
        ls_lambda=args.ls_lambda,
        ls_precision=args.ls_precision,
        backbone=args.backbone,
        device=args.device,
        progress=not args.quiet,
        extra_columns=common.parse_tags(args.tag),
        force=args.force,
        text_proxies=args.text_proxies,
    )
    print(f"wrote {args.out}")


def _grid_flags(parser) -> None:
    parser.add_argument("grid", help="grid YAML file, or paper:<name>")
    parser.add_argument("--out", help="also write the configuration table (.csv or .parquet)")


# The columns of `imprint grid --out`'s table (an earlier one is replaced, a results table not).
GRID_TABLE = ("config_id", "seed", "norm_pre", "gen", "agg", "m", "!accuracy")


def _grid(args) -> None:
    """expand a grid and count its configurations"""
    from imprint.engine.grid import expand_grid, load_grid

    where, grid = load_grid(args.grid)
    configs = expand_grid(grid, where=where)
    n = configs["config_id"].nunique()
    print(
        f"{where}: {n} configurations × seeds = {len(configs)} runs per (backbone, dataset, mapping, task)"
    )
    if args.out:
        from imprint.io import write_table
        from imprint.outputs import check_output

        check_output(args.out, "table", {"grid": args.grid}, args.force, signature=GRID_TABLE)
        write_table(configs, args.out, args.force)
        print(f"wrote {args.out}")


def _incremental_flags(inc) -> None:
    common.add_files(inc, grid=True)
    inc.add_argument(
        "--sessions",
        help="classes per session, sessions split by '/', e.g. 0,1,2,3,4/5/6/7/8/9 (instead of "
        "--protocol or --task with --base and --way)",
    )
    inc.add_argument(
        "--protocol",
        choices=["fscil_cifar100"],
        help="a packaged published protocol (its sessions and training image lists)",
    )
    inc.add_argument("--task", help="the classes in arrival order (with --base and --way)")
    inc.add_argument("--base", type=int, help="classes in the base session")
    inc.add_argument("--way", type=int, help="new classes per later session")
    inc.add_argument(
        "--shots", type=int, default=-1, help="training rows per new class, >= 1 (default -1: all)"
    )
    inc.add_argument(
        "--base-shots", type=int, default=-1, help="training rows per base class (default -1: all)"
    )
    inc.add_argument("--protocol-seed", type=int, default=0, help="seed of the shot draws (>= 0)")
    inc.add_argument("--mapping", help="YAML/JSON label mapping applied first")
    inc.add_argument(
        "--method-option",
        action="append",
        default=[],
        metavar="METHOD.KEY=VALUE",
        help="an option of GEN fecam, ranpac or fetril, e.g. ranpac.M=2000 (repeatable; "
        "unset: the papers' values)",
    )
    _text_flag(inc)
    common.add_run_options(inc, quiet=True)


def _method_options(given: list[str]) -> dict:
    """{method: {key: value}} of --method-option METHOD.KEY=VALUE flags (values read as YAML)."""
    from imprint.io import load_yaml_text

    out: dict = {}
    for text in given:
        name, sep, value = text.partition("=")
        method, dot, key = name.partition(".")
        if not (sep and dot and method and key):
            raise ValueError(
                f"--method-option {text!r}: expected METHOD.KEY=VALUE, e.g. ranpac.M=2000"
            )
        out.setdefault(method, {})[key] = load_yaml_text(value, f"--method-option {text}")
    return out


def _incremental(args) -> None:
    """class-incremental imprinting: classes arrive session by session

    Evaluate a grid as classes arrive in sessions (a base session, then sessions of new
    classes, optionally n-shot): after each session the new classes' proxies come from that
    session's rows only and every seen class is tested; plus the all-at-once upper bound. One
    row per configuration x seed x session. Not in the paper; GEN ls/kls and the linear probe
    are not incremental."""
    from imprint.api.evaluation import incremental_groups
    from imprint.engine.incremental import check_protocol, task_sessions

    def flag(key: str) -> str:  # errors name the flag of a protocol setting
        return "--" + key.replace("_", "-")

    sessions = None
    if args.sessions is not None:
        parts = args.sessions.split("/")
        for i, part in enumerate(parts, 1):
            if not part.strip():  # a stray '/' would drop a session unseen
                raise ValueError(
                    f"--sessions {args.sessions!r}: session {i} of {len(parts)} is empty "
                    "(sessions are split by '/', each a comma-separated list of classes)"
                )
        sessions = [parse_classes(part, "--sessions") for part in parts]
    settings = ("protocol", "task", "base", "way", "shots", "base_shots", "protocol_seed")
    spec = {"sessions": sessions, **{key: getattr(args, key) for key in settings}}
    check_protocol(spec, flag)  # the rules planning applies to a config's incremental section
    if args.base is not None:
        sessions = task_sessions(spec, parse_classes(args.task), flag, f"--task {args.task}")
    protocol = {
        "protocol": args.protocol,
        "sessions": sessions,
        "shots": args.shots,
        "base_shots": args.base_shots,
        "protocol_seed": args.protocol_seed,
        "methods": _method_options(args.method_option),
    }
    group = {"mapping": args.mapping, "extra_columns": common.parse_tags(args.tag)}
    incremental_groups(
        args.train,
        args.test,
        args.grid,
        args.out,
        protocol,
        [group],
        device=args.device,
        progress=not args.quiet,
        force=args.force,
        text_proxies=args.text_proxies,
    )
    what = args.protocol or (
        f"{len(sessions)} sessions ({', '.join(str(len(s)) for s in sessions)} classes)"
    )
    print(f"{what}; wrote {args.out}")


def _collapse_flags(parser) -> None:
    common.add_embedding_file(parser, "metrics")
    parser.add_argument(
        "--no-l2",
        action="store_true",
        help="skip the per-sample L2 normalisation (the paper uses it)",
    )
    parser.add_argument(
        "--ood",
        help="embedding file of out-of-distribution data: adds NC5 (nc5_ood_orthogonality)",
    )


def _collapse(args) -> None:
    """neural-collapse metrics (NC1, VCI, NC2, NC2g, CDNV, NC3, NC4; NC5 with --ood) of an embedding file"""
    from imprint.api.collapse import collapse_file

    options = common.embedding_file_options(args)
    metrics = collapse_file(args.embeddings, **options, l2_normalise=not args.no_l2, ood=args.ood)
    if not args.out:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    else:
        print(f"wrote {args.out}")


def _cd_flags(cd) -> None:
    cd.add_argument(
        "tables", nargs="+", metavar="table", help="results tables (.csv or .parquet), stacked"
    )
    cd.add_argument("--out-prefix", required=True, help="prefix of the output files")
    cd.add_argument(
        "--method", default="config_id", help="column naming the method (default: config_id)"
    )
    cd.add_argument(
        "--score", default="accuracy", help="score column, higher is better (default: accuracy)"
    )
    cd.add_argument(
        "--groups",
        help="comma-separated columns whose value combinations are the voters (default: those "
        f"of {','.join(GROUP_COLUMNS)} the tables have)",
    )
    cd.add_argument(
        "--seed", default=None, help="seed column: seeds are aggregated by the median first"
    )
    cd.add_argument("--alpha", type=float, default=0.05)
    cd.add_argument("--title")
    cd.add_argument(
        "--max-methods",
        type=int,
        help="test and draw only the best N methods by average rank (pairwise tests grow as N²)",
    )


def _cd(args) -> None:
    """critical-difference statistics and diagram from a long-format table"""
    from imprint.api.figures import critical_difference_files

    result = critical_difference_files(
        args.tables,
        args.out_prefix,
        method=args.method,
        score=args.score,
        groups=args.groups.split(",") if args.groups is not None else None,
        seed=args.seed,
        alpha=args.alpha,
        title=args.title,
        max_methods=args.max_methods,
        force=args.force,
    )
    print(result.summary)
    print(f"wrote {args.out_prefix}_ranks.csv, _pvalues.csv, _summary.txt, .pdf, .png")


# name -> (its flags, what it runs: the first line of its docstring is the command's help,
# the rest its description).
COMMANDS = {
    "evaluate": (_evaluate_flags, _evaluate),
    "grid": (_grid_flags, _grid),
    "incremental": (_incremental_flags, _incremental),
    "collapse": (_collapse_flags, _collapse),
    "cd": (_cd_flags, _cd),
}
