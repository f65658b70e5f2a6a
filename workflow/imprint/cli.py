"""The `imprint` command: evaluate grids, count configurations, measure collapse, rank methods.

Argument parsing only: every command calls one imprint.api function.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings

from imprint import __version__
from imprint.engine.tasks import TASK_SPLITS, parse_classes
from imprint.engine.vocabulary import DEFAULT_LS_PRECISION, GROUP_COLUMNS, LS_PRECISIONS


def _evaluate(args) -> None:
    from imprint.api import evaluate_files

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
        extra_columns=parse_tags(args.tag),
        force=args.force,
    )
    print(f"wrote {args.out}")


def _incremental(args) -> None:
    from imprint.api import incremental_groups
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
    }
    group = {"mapping": args.mapping, "extra_columns": parse_tags(args.tag)}
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
    )
    what = args.protocol or (
        f"{len(sessions)} sessions ({', '.join(str(len(s)) for s in sessions)} classes)"
    )
    print(f"{what}; wrote {args.out}")


def parse_tags(tags: list[str] | None) -> dict[str, str]:
    """--tag KEY=VALUE options as {KEY: VALUE}, in order; a repeated KEY is an error."""
    out: dict[str, str] = {}
    for tag in tags or ():
        key, sep, value = tag.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key.isidentifier():
            raise ValueError(
                f"--tag {tag!r}: expected KEY=VALUE with KEY a name, e.g. dataset=mnist"
            )
        if key in out:
            raise ValueError(f"--tag {key} given twice ({out[key]!r} and {value!r})")
        out[key] = value
    return out


def _grid(args) -> None:
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


# The columns of `imprint grid --out`'s table (an earlier one is replaced, a results table not).
GRID_TABLE = ("config_id", "seed", "norm_pre", "gen", "agg", "m", "!accuracy")


def _collapse(args) -> None:
    from imprint.api import collapse_file
    from imprint.engine.tasks import parse_classes

    metrics = collapse_file(
        args.embeddings,
        out=args.out,
        mapping=args.mapping,
        classes=parse_classes(args.classes, "--classes") if args.classes is not None else None,
        l2_normalise=not args.no_l2,
        ood=args.ood,
        force=args.force,
    )
    if not args.out:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    else:
        print(f"wrote {args.out}")


def _cd(args) -> None:
    from imprint.api import critical_difference_files

    result = critical_difference_files(
        args.tables,
        args.out_prefix,
        method_col=args.method,
        score_col=args.score,
        group_cols=args.groups.split(",") if args.groups is not None else None,
        seed_col=args.seed,
        alpha=args.alpha,
        title=args.title,
        max_methods=args.max_methods,
        force=args.force,
    )
    print(result.summary)
    print(f"wrote {args.out_prefix}_ranks.csv, _pvalues.csv, _summary.txt, .pdf, .png")


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
    parser = _Parser(prog="imprint", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser(
        "evaluate",
        help="evaluate every configuration of a grid on one task",
        description="Imprint and score every configuration × seed of a grid on one task of a "
        "training and a test embedding file (.npz with arrays 'embeddings' [N, D] float and "
        "'labels' [N] int, or an embedding directory written by the workflow).",
    )
    ev.add_argument("--train", required=True, help="training embeddings (.npz or directory)")
    ev.add_argument("--test", required=True, help="test embeddings (.npz or directory)")
    ev.add_argument(
        "--grid",
        required=True,
        help="grid YAML file, or paper:<name> (aggfixed, aggfocus, fig6, fewshot, multimodal)",
    )
    ev.add_argument("--out", required=True, help="results table (.csv or .parquet)")
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
    ev.add_argument(
        "--tag",
        action="append",
        metavar="KEY=VALUE",
        help="add a constant column to the table (repeatable), e.g. --tag backbone=my_fm "
        "--tag dataset=mnist, so tables of several runs can be ranked together by `imprint cd`",
    )
    ev.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    ev.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=_evaluate)

    gr = sub.add_parser("grid", help="expand a grid and count its configurations")
    gr.add_argument("grid", help="grid YAML file, or paper:<name>")
    gr.add_argument("--out", help="also write the configuration table (.csv or .parquet)")
    gr.set_defaults(func=_grid)

    _add_collapse(sub)
    _add_cd(sub)
    _add_model_choice(sub)
    _add_incremental(sub)
    _add_verify(sub)
    ch = sub.add_parser(
        "check-config",
        help="check a workflow config file as `snakemake -n` would (YAML, schema, names)",
        description="Check a workflow config (config.yaml or a --configfile) without planning "
        "the workflow: YAML errors with line and column, unknown keys with the allowed ones, "
        "names no section defines, backbones the registry lacks.",
    )
    ch.add_argument("config", help="the config file (YAML)")
    ch.set_defaults(func=_check_config)
    _add_force(sub.choices.values())
    return parser


def _check_config(args) -> None:
    from imprint.planning.checks import check_config_file

    config = check_config_file(args.config)
    print(f"{args.config}: valid ({len(config['experiments'])} experiment(s))")


def _add_collapse(sub) -> None:
    co = sub.add_parser(
        "collapse",
        help="neural-collapse metrics (NC1, VCI, NC2, NC2g, CDNV; NC5 with --ood) of an embedding file",
    )
    co.add_argument("embeddings", help="embedding file (.npz or directory)")
    co.add_argument("--out", help="write the metrics as JSON here (default: print)")
    co.add_argument(
        "--mapping", help="YAML/JSON label mapping applied first (unmapped labels dropped)"
    )
    co.add_argument("--classes", help="only these classes (comma-separated, after mapping)")
    co.add_argument(
        "--no-l2",
        action="store_true",
        help="skip the per-sample L2 normalisation (the paper uses it)",
    )
    co.add_argument(
        "--ood",
        help="embedding file of out-of-distribution data: adds NC5 (nc5_ood_orthogonality)",
    )
    co.set_defaults(func=_collapse)


def _numbers(text: str) -> list[str]:
    """Comma-separated values, as given: the command's checks convert them, naming the flag."""
    return [v.strip() for v in text.split(",") if v.strip()]


def _probe(args) -> None:
    from imprint.model_choice import probe_files

    table = probe_files(
        args.train,
        args.test,
        args.out,
        classes=parse_classes(args.task) if args.task is not None else None,
        mapping=args.mapping,
        penalties=_numbers(args.penalties) if args.penalties is not None else None,
        ks=_numbers(args.knn_k) if args.knn_k is not None else None,
        temperature=args.temperature,
        seed=args.seed,
        device=args.device,
        extra_columns=parse_tags(args.tag),
        force=args.force,
    )
    for row in table.itertuples():
        what = f"λ = {row.penalty:g}" if row.method == "linear_probe" else f"k = {row.k}"
        print(f"{row.method} ({what}): {row.accuracy:.2f} %")
    print(f"wrote {args.out}")


def _transferability(args) -> None:
    from imprint.model_choice import transferability_file

    result = transferability_file(
        args.embeddings,
        out=args.out,
        mapping=args.mapping,
        classes=parse_classes(args.classes, "--classes") if args.classes is not None else None,
        force=args.force,
    )
    print(json.dumps(result, indent=2, sort_keys=True) if not args.out else f"wrote {args.out}")


def _similarity(args) -> None:
    from imprint.model_choice import similarity_files

    table = similarity_files(args.embeddings, out=args.out, force=args.force)
    for row in table.itertuples():
        print(f"CKA {row.a} ~ {row.b}: {row.cka:.4f}")
    if args.out:
        print(f"wrote {args.out}")


def _concat(args) -> None:
    from imprint.model_choice import concat_embeddings

    names = [str(p) for p in args.embeddings]
    n = concat_embeddings(args.embeddings, args.out, names, args.normalise, force=args.force)
    print(f"joined {len(names)} embedding sets by image id: {n} rows → {args.out}")


def _add_incremental(sub) -> None:
    inc = sub.add_parser(
        "incremental",
        help="class-incremental imprinting: classes arrive session by session",
        description="Evaluate a grid as classes arrive in sessions (a base session, then "
        "sessions of new classes, optionally n-shot): after each session the new classes' "
        "proxies come from that session's rows only and every seen class is tested; plus the "
        "all-at-once upper bound. One row per configuration x seed x session. Not in the "
        "paper; GEN ls/kls and the linear probe are not incremental.",
    )
    inc.add_argument("--train", required=True, help="training embeddings (.npz or directory)")
    inc.add_argument("--test", required=True, help="test embeddings (.npz or directory)")
    inc.add_argument("--grid", required=True, help="grid YAML file, or paper:<name>")
    inc.add_argument("--out", required=True, help="results table (.csv or .parquet)")
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
    inc.add_argument("--tag", action="append", metavar="KEY=VALUE", help="a constant column")
    inc.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    inc.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    inc.set_defaults(func=_incremental)


def _add_model_choice(sub) -> None:
    pr = sub.add_parser(
        "probe",
        help="baselines beside imprinting: a linear probe and dinov2's kNN on one task",
        description="Linear probe (multinomial logistic regression, L2 penalty chosen on a "
        "held-out 20%% of the training rows, refit on all) and dinov2's kNN (cosine, votes "
        "exp(s/T)) on one task of two embedding files; a results table, one row per method "
        "and kNN k. Not in the paper.",
    )
    pr.add_argument("--train", required=True, help="training embeddings (.npz or directory)")
    pr.add_argument("--test", required=True, help="test embeddings (.npz or directory)")
    pr.add_argument("--out", required=True, help="results table (.csv or .parquet)")
    pr.add_argument("--task", help="task classes, as for evaluate (default: every class)")
    pr.add_argument("--mapping", help="YAML/JSON label mapping applied first")
    pr.add_argument(
        "--penalties",
        help="comma-separated L2 penalties λ (scikit-learn's 1/C) to search (default: the "
        "fitted rows × 1e-6, 1e-5, …, 1e2)",
    )
    pr.add_argument("--knn-k", help="comma-separated kNN k (default 10,20,100,200)")
    pr.add_argument("--temperature", type=float, help="kNN temperature T (default 0.07)")
    pr.add_argument("--seed", type=int, default=0, help="seed of the held-out split (default 0)")
    pr.add_argument("--tag", action="append", metavar="KEY=VALUE", help="a constant column")
    pr.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    pr.set_defaults(func=_probe)

    tr = sub.add_parser(
        "transferability",
        help="transferability estimates of a training embedding file (LogME, H-score, NCTI terms, TMI, leave-one-out kNN, NC1, VCI)",
    )
    tr.add_argument("embeddings", help="training embeddings (.npz or directory)")
    tr.add_argument("--out", help="write the estimates as JSON here (default: print)")
    tr.add_argument("--mapping", help="YAML/JSON label mapping applied first")
    tr.add_argument("--classes", help="only these classes (comma-separated, after mapping)")
    tr.set_defaults(func=_transferability)

    si = sub.add_parser(
        "similarity",
        help="linear CKA between embedding files of the same images (every pair)",
    )
    si.add_argument("embeddings", nargs="+", help="embedding files of the same images, same order")
    si.add_argument("--out", help="write the pairs as a table (.csv or .parquet)")
    si.set_defaults(func=_similarity)

    co = sub.add_parser(
        "concat",
        help="one embedding set as the concatenation of others of the same images (by image id)",
        description="Join embedding sets of the same images row by row by their image ids "
        "(not by position), each part L2-normalised first unless --normalise none. Not in "
        "the paper (Zhang & Bottou's rich representations).",
    )
    co.add_argument("embeddings", nargs="+", help="two or more embedding sets with image ids")
    co.add_argument("--out", required=True, help="the joined set (directory or .npz)")
    co.add_argument(
        "--normalise", default="l2", choices=["l2", "none"], help="per part (default l2)"
    )
    co.set_defaults(func=_concat)


def _add_cd(sub) -> None:
    cd = sub.add_parser(
        "cd", help="critical-difference statistics and diagram from a long-format table"
    )
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
    cd.set_defaults(func=_cd)


def _add_verify(sub) -> None:
    ve = sub.add_parser(
        "verify",
        help="re-check the checksums of the embedding sets below folders (default results/)",
        description="Find every embedding set (a folder holding meta.json, embeddings.npy or "
        "labels.npy; one missing some is reported) "
        "below each PATH and re-hash its array files against the checksums in its meta.json, "
        "also comparing meta's n × dim with each array's header: corruption that keeps a "
        "file's modification time (bit rot, a bad copy) is invisible to `snakemake -n`. Prints "
        "one line per corrupted set naming the file, what is wrong and the command that "
        "rebuilds it, one warning per set without checksums, and a summary. Exit status: 0 "
        "every set verified (or unverifiable), 1 a set is corrupted, 2 a PATH cannot be read.",
    )
    ve.add_argument(
        "paths", nargs="*", default=["results"], metavar="PATH", help="default: results"
    )
    ve.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ve.set_defaults(func=_verify)


def _verify(args) -> None:
    from imprint.planning.caches import verify_embedding_sets

    report = verify_embedding_sets(args.paths, progress=not args.quiet)
    for line in report.warning_lines():
        print(f"imprint verify: warning: {line}", file=sys.stderr)
    for line in report.problem_lines():
        print(line)
    print(report.summary())
    if report.corrupted:
        raise SystemExit(1)  # 2 is main's: a PATH that cannot be read


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
        except (ValueError, OSError) as err:  # OSError: missing files, permissions, a full disk
            print(f"imprint {args.command}: error: {_one_line(err)}", file=sys.stderr)
            return 2
    return 0


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return " ".join(str(err).split("\n"))


if __name__ == "__main__":
    sys.exit(main())
