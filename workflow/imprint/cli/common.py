"""What several commands share: flags for embedding files and runs, and values as given."""

from __future__ import annotations


def add_files(parser, grid: bool) -> None:
    """The embedding files a command reads, its grid where it has one, and its table."""
    parser.add_argument("--train", required=True, help="training embeddings (.npz or directory)")
    parser.add_argument("--test", required=True, help="test embeddings (.npz or directory)")
    if grid:
        parser.add_argument(
            "--grid",
            required=True,
            help="grid YAML file, or paper:<name> (aggfixed, aggfocus, fig6, fewshot, multimodal)",
        )
    parser.add_argument("--out", required=True, help="results table (.csv or .parquet)")


def add_embedding_file(parser, what: str) -> None:
    """One embedding file, a label mapping and classes, and where the JSON of `what` goes."""
    parser.add_argument("embeddings", help="embedding file (.npz or directory)")
    parser.add_argument("--out", help=f"write the {what} as JSON here (default: print)")
    parser.add_argument(
        "--mapping", help="YAML/JSON label mapping applied first (unmapped labels dropped)"
    )
    parser.add_argument("--classes", help="only these classes (comma-separated, after mapping)")


def embedding_file_options(args) -> dict:
    """The keyword arguments add_embedding_file's flags give a file-level function."""
    from imprint.engine.tasks import parse_classes

    classes = None if args.classes is None else parse_classes(args.classes, "--classes")
    return {"out": args.out, "mapping": args.mapping, "classes": classes, "force": args.force}


def add_run_options(parser, quiet: bool) -> None:
    """--tag and --device of the commands that score a task (and -q where a bar shows)."""
    parser.add_argument(
        "--tag",
        action="append",
        metavar="KEY=VALUE",
        help="add a constant column to the table (repeatable), e.g. --tag backbone=my_fm "
        "--tag dataset=mnist, so tables of several runs can be ranked together by `imprint cd`",
    )
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    if quiet:
        parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


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


def comma_values(text: str) -> list[str]:
    """Comma-separated values, as given: the command's checks convert them, naming the flag."""
    return [v.strip() for v in text.split(",") if v.strip()]
