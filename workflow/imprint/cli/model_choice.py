"""The commands of the questions beyond the paper: probe, transferability, similarity, concat."""

from __future__ import annotations

import json

from imprint.cli import common
from imprint.engine.tasks import parse_classes


def _probe_flags(parser) -> None:
    common.add_files(parser, grid=False)
    parser.add_argument("--task", help="task classes, as for evaluate (default: every class)")
    parser.add_argument("--mapping", help="YAML/JSON label mapping applied first")
    parser.add_argument(
        "--penalties",
        help="comma-separated L2 penalties λ (scikit-learn's 1/C) to search (default: the "
        "fitted rows × 1e-6, 1e-5, …, 1e2)",
    )
    parser.add_argument("--knn-k", help="comma-separated kNN k (default 10,20,100,200)")
    parser.add_argument("--temperature", type=float, help="kNN temperature T (default 0.07)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the held-out split (default 0)"
    )
    common.add_run_options(parser, quiet=False)


def _probe(args) -> None:
    """baselines beside imprinting: a linear probe and dinov2's kNN on one task

    Linear probe (multinomial logistic regression, L2 penalty chosen on a held-out 20 % of
    the training rows, refit on all) and dinov2's kNN (cosine, votes exp(s/T)) on one task of
    two embedding files; a results table, one row per method and kNN k. Not in the paper."""
    from imprint.api.baselines import probe_files

    table = probe_files(
        args.train,
        args.test,
        args.out,
        classes=parse_classes(args.task) if args.task is not None else None,
        mapping=args.mapping,
        penalties=common.comma_values(args.penalties) if args.penalties is not None else None,
        ks=common.comma_values(args.knn_k) if args.knn_k is not None else None,
        temperature=args.temperature,
        seed=args.seed,
        device=args.device,
        extra_columns=common.parse_tags(args.tag),
        force=args.force,
    )
    for row in table.itertuples():
        what = f"λ = {row.penalty:g}" if row.method == "linear_probe" else f"k = {row.k}"
        print(f"{row.method} ({what}): {row.accuracy:.2f} %")
    print(f"wrote {args.out}")


def _transferability(args) -> None:
    """transferability estimates of a training embedding file (LogME, H-score, NCTI terms, TMI, leave-one-out kNN, NC1, VCI, SFDA, NLEEP, PARC, GBC, PED + LogME, embedding size, parameter count)"""
    from imprint.api.model_choice import transferability_file

    result = transferability_file(args.embeddings, **common.embedding_file_options(args))
    print(json.dumps(result, indent=2, sort_keys=True) if not args.out else f"wrote {args.out}")


def _similarity_flags(parser) -> None:
    parser.add_argument(
        "embeddings",
        nargs="+",
        help="embedding files of the same images (rows paired by image id where the files "
        "record ids, else by position)",
    )
    parser.add_argument("--out", help="write the pairs as a table (.csv or .parquet)")


def _similarity(args) -> None:
    """linear CKA between embedding files of the same images (every pair)"""
    from imprint.api.model_choice import similarity_files

    table = similarity_files(args.embeddings, out=args.out, force=args.force)
    for row in table.itertuples():
        print(f"CKA {row.a} ~ {row.b}: {row.cka:.4f}")
    if args.out:
        print(f"wrote {args.out}")


def _concat_flags(parser) -> None:
    parser.add_argument("embeddings", nargs="+", help="two or more embedding sets with image ids")
    parser.add_argument("--out", required=True, help="the joined set (directory or .npz)")
    parser.add_argument(
        "--normalise", default="l2", choices=["l2", "none"], help="per part (default l2)"
    )


def _concat(args) -> None:
    """one embedding set as the concatenation of others of the same images (by image id)

    Join embedding sets of the same images row by row by their image ids (not by position),
    each part L2-normalised first unless --normalise none. Not in the paper (Zhang & Bottou's
    rich representations)."""
    from imprint.api.data import concat_embeddings

    names = [str(p) for p in args.embeddings]
    n = concat_embeddings(args.embeddings, args.out, names, args.normalise, force=args.force)
    print(f"joined {len(names)} embedding sets by image id: {n} rows → {args.out}")


# name -> (its flags, what it runs: the first line of its docstring is the command's help,
# the rest its description).
def _stitch_flags(parser) -> None:
    parser.add_argument(
        "--train",
        nargs="+",
        required=True,
        help="each backbone's training embeddings of the same images (two or more)",
    )
    parser.add_argument(
        "--test", nargs="+", required=True, help="their test embeddings, in the same order"
    )
    parser.add_argument("--names", nargs="+", help="the backbones' names (default: the paths)")
    parser.add_argument("--out", required=True, help="every pair's numbers (.csv or .parquet)")
    parser.add_argument(
        "--ranks-out", help="also the rank-sensitivity table: the source cut to r components"
    )
    parser.add_argument(
        "--rows",
        type=int,
        default=1000,
        help="training rows of the direct_k matching (default 1000; 0 leaves it out)",
    )
    parser.add_argument("--seed", type=int, default=0, help="row draw, task-loss init, probe")
    parser.add_argument(
        "--norms",
        nargs=3,
        choices=["none", "l2"],
        default=["l2", "l2", "l2"],
        metavar="NORM",
        help="the target's imprinted classifier: NORMpre NORMpost NORMinf (GEN mean, AGG max; "
        "default l2 l2 l2, Qi et al.'s)",
    )


def _stitch(args) -> None:
    """can one model stand in for another? stitching between embedding sets

    Every ordered pair (source, target) of backbones embedding the same images: the source's
    embeddings mapped into the target's space by direct matching (least squares with bias, on
    all training rows and on --rows of them), orthogonal matching (Procrustes) and task-loss
    matching (through the target's frozen classifier), then classified by the target's
    imprinted classifier (L2 means) and linear probe: stitched accuracy, the target's own, the
    penalty, the residual and the share of mapped rows out of the target's distribution."""
    from imprint.api.stitching import stitch_files

    if args.names is not None and len(args.names) != len(args.train):
        raise ValueError(f"--names: {len(args.names)} names for {len(args.train)} backbones")
    table, _ = stitch_files(
        args.train,
        args.test,
        out=args.out,
        ranks_out=args.ranks_out,
        names=args.names,
        rows=args.rows or None,
        seed=args.seed,
        force=args.force,
        norms=args.norms,
    )
    for row in table[table["classifier"] == "mean"].itertuples():
        print(
            f"{row.source} -> {row.target} {row.matching}: {row.stitched_accuracy:.2f} % "
            f"(target {row.target_accuracy:.2f} %, residual {row.residual:.3f})"
        )
    print(f"wrote {', '.join(p for p in (args.out, args.ranks_out) if p)}")


COMMANDS = {
    "probe": (_probe_flags, _probe),
    "transferability": (
        lambda parser: common.add_embedding_file(parser, "estimates"),
        _transferability,
    ),
    "similarity": (_similarity_flags, _similarity),
    "concat": (_concat_flags, _concat),
    "stitch": (_stitch_flags, _stitch),
}
