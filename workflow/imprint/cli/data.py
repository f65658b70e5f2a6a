"""The command of the pipeline's first stage: embed (a dataset's images with a frozen model)."""

from __future__ import annotations

from pathlib import Path

from imprint.engine.tasks import parse_classes


def _embed_flags(parser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        help="a registry backbone (e.g. resnet50) or a model by provider and name: "
        "timm/<model>, torchvision/<model>[/<weights>], hf/<repo id or local directory>, "
        "open_clip/<architecture>[/<pretrained tag>]",
    )
    images = parser.add_mutually_exclusive_group(required=True)
    images.add_argument("--images", help="a folder of class folders of images")
    images.add_argument("--dataset", help="a registry dataset (e.g. cifar10), under --data-dir")
    images.add_argument("--hf", help="a `datasets` dataset: hub id or save_to_disk directory")
    parser.add_argument("--out", required=True, help="the embedding set (a directory)")
    parser.add_argument("--split", default="train", choices=["train", "test"])
    parser.add_argument(
        "--test-fraction",
        type=float,
        help="with --images: hold out this fraction of each class as the test split (seeded by "
        "--split-seed); without it the whole folder is embedded as --split",
    )
    parser.add_argument("--split-seed", type=int, default=0, help="seed of --test-fraction")
    parser.add_argument("--image-column", default="image", help="with --hf (default image)")
    parser.add_argument("--label-column", default="label", help="with --hf (default label)")
    parser.add_argument("--data-dir", default="data", help="where --dataset lives (default data)")
    parser.add_argument(
        "--weights",
        default="default",
        help="'default' (pretrained), 'none' (seeded random init) or a state_dict file",
    )
    parser.add_argument(
        "--pool",
        choices=["cls", "mean", "pooler", "projection"],
        help="hf/ models only (projection: a CLIP-like model's image features, its default)",
    )
    parser.add_argument(
        "--layers",
        help="embed these inner modules' outputs instead of the final pooled output: "
        "comma-separated '<module name>[:<pool>]' (pool: cls, mean, cls+mean, spatial_mean, "
        "flatten; none picks one by the output's shape), e.g. 'blocks.10,blocks.11:cls+mean'",
    )
    parser.add_argument("--image-size", type=int, help="crop size (default: the model's own)")
    parser.add_argument("--classes", help="only these classes (comma-separated labels)")
    parser.add_argument("--limit-per-class", type=int, help="at most this many images a class")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _source(args):
    """The dataset as the library takes it: a registry name or a source mapping."""
    if args.test_fraction is not None and not args.images:
        raise ValueError("--test-fraction splits an --images folder; give --images")
    if args.images:
        if args.test_fraction is None:  # the whole folder is the split asked for
            return {"image_folder": {"train": args.images, "test": args.images}}
        spec = {"root": args.images, "test_fraction": args.test_fraction}
        return {"image_folder": spec | {"seed": args.split_seed}}
    if args.hf:
        columns = {"image_column": args.image_column, "label_column": args.label_column}
        return {"hf": {"path": args.hf, **columns}}
    return args.dataset


def _layers(text: str | None) -> list[str] | None:
    """--layers as the config's list: entries split at commas (and spaces)."""
    if text is None:
        return None
    return [entry for entry in text.replace(",", " ").split() if entry]


def _embed(args) -> None:
    """embed a dataset's images with a frozen model, as the workflow caches embeddings

    One split of an image folder (class folders, labels by sorted folder name), a `datasets`
    dataset or a registry dataset, through a registry backbone or any timm, torchvision,
    Hugging Face or open_clip model by name, to an embedding set (embeddings.npy, labels.npy, ids.npy,
    meta.json with checksums, the class names and the model's provider and version) that
    every other command reads. Unreadable images are skipped and counted."""
    from imprint.api.data import embed_images

    out = embed_images(
        args.model,
        _source(args),
        args.split,
        args.out,
        data_dir=args.data_dir,
        weights=None if args.weights.lower() in ("none", "null") else args.weights,
        force=args.force,
        pool=args.pool,
        layers=_layers(args.layers),
        image_size=args.image_size,
        classes=None if args.classes is None else parse_classes(args.classes, "--classes"),
        limit_per_class=args.limit_per_class,
        batch_size=args.batch_size,
        device=args.device,
        progress=not args.quiet,
    )
    print(f"wrote {out}")


def _text_flags(parser) -> None:
    parser.add_argument(
        "embeddings", help="an embedding set whose classes get text proxies (its labels)"
    )
    parser.add_argument(
        "--model",
        required=True,
        help="the CLIP-like model the images were embedded with: open_clip/<architecture>"
        "[/<tag>] or hf/<CLIP or SigLIP repo id or local directory>",
    )
    parser.add_argument("--out", required=True, help="the text proxies (an embedding set)")
    parser.add_argument(
        "--templates",
        default="clip_imagenet",
        help="prompt templates: a packaged set (clip_imagenet: CLIP's 80; clip_imagenet_7; "
        "photo) or a text file of templates, one per line, '{}' standing for the class name",
    )
    parser.add_argument(
        "--class-names",
        help="a text file of class names by label, one per line (default: the names the "
        "embedding set's meta.json records)",
    )
    parser.add_argument(
        "--weights",
        default="default",
        help="as the images were embedded: 'default', 'none' (seeded random init) or a file",
    )
    parser.add_argument("--pool", choices=["projection"], help="hf/ models: projection only")
    parser.add_argument("--image-size", type=int, help="as the images were embedded")


def _lines(path: str | None) -> list[str] | None:
    """The non-empty lines of a text file (None for no file)."""
    if path is None:
        return None
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def _text_proxies(args) -> None:
    """text proxies of an embedding set's classes from a CLIP-like model's text tower

    Each class name in every prompt template, encoded by the model's text tower: each prompt
    L2-normalised, averaged per class, L2-normalised again (CLIP's zero-shot classifier).
    Written as an embedding set, one row a class, that `imprint evaluate --text-proxies`
    reads for GEN text and text_mean."""
    from imprint.api.text import make_text_proxies

    given = Path(args.templates).is_file()  # else a packaged set's name
    out = make_text_proxies(
        args.embeddings,
        args.out,
        args.model,
        templates=_lines(args.templates) if given else args.templates,
        class_names=_lines(args.class_names),
        weights=None if args.weights.lower() in ("none", "null") else args.weights,
        image_size=args.image_size,
        pool=args.pool,
        force=args.force,
    )
    print(f"wrote {out}")


# name -> (its flags, what it runs: the first line of its docstring is the command's help,
# the rest its description).
COMMANDS = {"embed": (_embed_flags, _embed), "text-proxies": (_text_flags, _text_proxies)}
