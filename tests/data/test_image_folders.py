"""Datasets from the user's own class-per-folder images: labels, conversions, skips, split,
extraction meta, planning's checks and a small workflow run."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from imprint.data.datasets import build_dataset, dataset_targets, skipped_images
from imprint.data.extract import extract_to_file
from imprint.data.folder_layout import FolderError, stratified_split, to_rgb_image
from imprint.planning.checks import CONFIG_SCHEMA, check_config, validate_config
from imprint.planning.errors import ConfigError
from imprint.planning.mappings import dataset_classes

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _snakemake import job_counts, snakemake  # noqa: E402


def _grey16(path: Path, value: int) -> None:
    Image.fromarray(np.full((6, 5), value, dtype=np.uint16)).save(path)


def _palette(path: Path) -> None:
    image = Image.new("P", (6, 6), 1)
    image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    image.save(path)


def _rgba(path: Path) -> None:
    Image.new("RGBA", (7, 4), (10, 20, 30, 0)).save(path)  # fully transparent


def make_tree(root: Path, broken: bool = True) -> Path:
    """Three classes: `bird` (RGB and CMYK JPEGs), `cat` (16-bit, palette and RGBA PNGs), `dog`
    (RGB PNGs, plus a corrupt and an empty file where `broken`)."""
    for name in ("bird", "cat", "dog"):
        (root / name).mkdir(parents=True)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(root / "bird/a.jpg")
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(root / "bird/b_cmyk.jpg")
    _grey16(root / "cat/a16.png", 65535)
    _palette(root / "cat/b_palette.png")
    _rgba(root / "cat/c_rgba.png")
    for i in range(2):
        Image.new("RGB", (5, 9), (0, 0, 40 * i)).save(root / f"dog/{i}.png")
    if broken:
        (root / "dog/corrupt.jpg").write_bytes(b"\xff\xd8 this is not a JPEG" * 10)
        (root / "dog/empty.png").write_bytes(b"")
    (root / "dog/notes.txt").write_text("not an image")  # not an image ending: not listed
    return root


@pytest.fixture
def trees(tmp_path):
    return {
        "train": str(make_tree(tmp_path / "train")),
        "test": str(make_tree(tmp_path / "test", broken=False)),
    }


def test_image_folder_labels_names_conversions_and_skips(trees):
    source = {"image_folder": trees, "name": "mine"}
    train = build_dataset(source, "unused", "train")
    assert train.classes == ["bird", "cat", "dog"]
    np.testing.assert_array_equal(dataset_targets(train), [0, 0, 1, 1, 1, 2, 2])
    assert sorted(Path(p).name for p in skipped_images(train)) == ["corrupt.jpg", "empty.png"]
    images = [train[i][0] for i in range(len(train))]
    assert {im.mode for im in images} == {"RGB"}
    by_name = {p.name: im for (p, _), im in zip(train.samples, images, strict=True)}
    assert by_name["a16.png"].getpixel((0, 0)) == (255, 255, 255)  # 65535 -> 255, not clipped
    assert by_name["b_palette.png"].getpixel((0, 0)) == (10, 200, 30)
    assert by_name["c_rgba.png"].getpixel((0, 0)) == (255, 255, 255)  # transparent over white
    red = np.asarray(by_name["b_cmyk.jpg"], dtype=int)[0, 0]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60  # CMYK (0, 255, 255, 0) is red
    test = build_dataset(source, "unused", "test")
    assert len(test) == 7 and skipped_images(test) == []
    only = build_dataset(source, "unused", "test", classes=[2])
    np.testing.assert_array_equal(dataset_targets(only), [2, 2])  # labels keep their values


def test_sixteen_bit_grey_scales_rather_than_clips():
    image = Image.fromarray(np.array([[0, 257 * 128, 65535]], dtype=np.uint16))
    assert np.asarray(to_rgb_image(image))[0, :, 0].tolist() == [0, 128, 255]


def test_class_without_a_readable_image_fails_naming_its_folder(tmp_path):
    make_tree(tmp_path / "t")
    for f in (tmp_path / "t/dog").glob("*.png"):
        f.unlink()
    spec = {"train": str(tmp_path / "t"), "test": str(tmp_path / "t")}
    with pytest.raises(FolderError, match=r"datasets\.mine\.image_folder\.train: .*t/dog"):
        build_dataset({"image_folder": spec, "name": "mine"}, "x", "train")


def test_stratified_split_by_hand_count_and_seed():
    labels = np.repeat([0, 1, 2], [10, 7, 3])
    train, test = stratified_split(labels, 0.3, seed=5)
    # round(0.3 n) per class, at least one each way: 10 -> 3, 7 -> 2, 3 -> 1.
    assert np.bincount(labels[test]).tolist() == [3, 2, 1]
    assert np.bincount(labels[train]).tolist() == [7, 5, 2]
    assert sorted([*train, *test]) == list(range(20))
    again = stratified_split(labels, 0.3, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, test), strict=True))
    others = [stratified_split(labels, 0.3, seed=s)[1] for s in range(1, 6)]
    assert any(not np.array_equal(o, test) for o in others)
    with pytest.raises(FolderError, match="class 1 has 1 image"):
        stratified_split(np.array([0, 0, 1]), 0.5, seed=0)


def test_root_tree_is_split_per_class_deterministically(tmp_path):
    root = tmp_path / "all"
    for name, n in (("a", 10), ("b", 5)):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("L", (4, 4), i).save(root / name / f"{i:02d}.png")
    spec = {"root": str(root), "test_fraction": 0.2, "seed": 3}
    train = build_dataset({"image_folder": spec}, "x", "train")
    test = build_dataset({"image_folder": spec}, "x", "test")
    assert np.bincount(dataset_targets(test)).tolist() == [2, 1]
    assert np.bincount(dataset_targets(train)).tolist() == [8, 4]
    files = {p for p, _ in train.samples} | {p for p, _ in test.samples}
    assert len(files) == 15 and not {p for p, _ in train.samples} & {p for p, _ in test.samples}
    again = build_dataset({"image_folder": spec}, "x", "test")
    assert again.samples == test.samples
    default = build_dataset({"image_folder": {"root": str(root)}}, "x", "test")
    assert np.bincount(dataset_targets(default)).tolist() == [2, 1]  # 0.2, seed 0


def test_extraction_meta_has_class_names_and_skips(trees, tmp_path):
    source = {"image_folder": trees, "name": "mine"}
    out = extract_to_file("pixels", source, "train", "unused", tmp_path / "emb", progress=False)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["class_names"] == ["bird", "cat", "dog"]
    assert meta["skipped_images"] == 2 and meta["dataset"] == "mine" and meta["n"] == 7


def test_registry_dataset_meta_has_no_skips(tmp_path):
    out = extract_to_file(
        "pixels", "digits", "test", tmp_path, tmp_path / "d", limit_per_class=1, progress=False
    )
    meta = json.loads((out / "meta.json").read_text())
    assert meta["skipped_images"] == 0 and meta["n"] == 10


# --- Hugging Face datasets ----------------------------------------------------------------------


def save_hf(path: Path, label_names=("a", "b")) -> Path:
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"img": datasets.Image(), "y": datasets.ClassLabel(names=list(label_names))}
    )
    images = [Image.new("L", (5, 5), 40 * i) for i in range(4)]
    images.append(Image.new("CMYK", (5, 5), (0, 255, 255, 0)))
    train = datasets.Dataset.from_dict({"img": images, "y": [0, 1, 0, 1, 1]}, features=features)
    raw = datasets.Features({"img": datasets.Image(decode=False), "y": features["y"]})
    broken = datasets.Dataset.from_dict(
        {"img": [{"bytes": b"junk", "path": None}], "y": [1]}, features=raw
    ).cast_column("img", datasets.Image())
    train = datasets.concatenate_datasets([train, broken])
    test = train.select([0, 1])
    datasets.DatasetDict(fit=train, test=test).save_to_disk(str(path))
    return path


def test_hf_dataset_from_disk(tmp_path):
    spec = {"path": str(save_hf(tmp_path / "hf")), "image_column": "img", "label_column": "y"}
    spec["train_split"] = "fit"
    train = build_dataset({"hf": spec, "name": "mine"}, "x", "train")
    np.testing.assert_array_equal(dataset_targets(train), [0, 1, 0, 1, 1])
    assert train.classes == ["a", "b"] and skipped_images(train) == [f"{spec['path']}[train][5]"]
    assert {train[i][0].mode for i in range(len(train))} == {"RGB"}
    only = build_dataset({"hf": spec}, "x", "test", classes=[1])
    np.testing.assert_array_equal(dataset_targets(only), [1])
    with pytest.raises(ValueError, match="no split 'train'"):
        build_dataset({"hf": {**spec, "train_split": "train"}}, "x", "train")
    with pytest.raises(ValueError, match="no column 'image'"):
        build_dataset({"hf": {"path": spec["path"], "train_split": "fit"}}, "x", "train")
    out = extract_to_file("pixels", {"hf": spec}, "train", "x", tmp_path / "e", progress=False)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["class_names"] == ["a", "b"] and meta["skipped_images"] == 1


def test_planning_reads_local_hf_classes(tmp_path):
    path = save_hf(tmp_path / "hf", label_names=("x", "y", "z"))
    config = _config({"root": "unused"}, kind="hf", spec={"path": str(path), "label_column": "y"})
    config["datasets"]["mine"]["hf"]["train_split"] = "fit"
    check_config(config)
    assert config["datasets"]["mine"]["sources"] == ["hf"]
    assert dataset_classes(config, "mine") == [0, 1, 2]
    hub = _config({"root": "unused"}, kind="hf", spec={"path": "someone/not-local"})
    check_config(hub)
    assert dataset_classes(hub, "mine") is None  # the hub's files decide
    config["datasets"]["mine"]["hf"]["train_split"] = "nope"
    with pytest.raises(ConfigError, match=r"datasets\.mine\.hf\.path: .* with a 'nope' split"):
        check_config(config)


# --- planning -----------------------------------------------------------------------------------


def _config(image_folder, kind: str = "image_folder", spec=None) -> dict:
    config = {
        "data_dir": "data",
        "datasets": {"mine": {kind: image_folder if spec is None else spec}},
        "backbones": {"pixels": {}},
        "mappings": {"none": {}},
        "tasks": {"two": [0, 1]},
        "experiments": {
            "e": {
                "grid": {"seeds": [1], "gen": ["mean"], "k": [1]},
                "datasets": ["mine"],
                "backbones": ["pixels"],
                "mappings": ["none"],
                "tasks": ["two"],
            }
        },
    }
    from snakemake.utils import validate

    validate_config(config, CONFIG_SCHEMA)
    validate(config, str(CONFIG_SCHEMA))
    return config


def test_planning_knows_the_classes_and_the_source(trees):
    config = _config(trees)
    check_config(config)
    assert config["datasets"]["mine"]["sources"] == ["image_folder"]
    assert dataset_classes(config, "mine") == [0, 1, 2]
    config["datasets"]["mine"]["classes"] = [2, 7]
    assert dataset_classes(config, "mine") == [2]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing", r"datasets\.mine\.image_folder\.test: no folder .*nowhere"),
        ("one_class", r"datasets\.mine\.image_folder\.train: .*train holds 1 class folder"),
        (
            "empty_class",
            r"datasets\.mine\.image_folder\.train: class folder .*train/cat holds 0 image",
        ),
        ("mismatch", r"datasets\.mine\.image_folder: the train .* same class folders"),
    ],
)
def test_planning_refuses_bad_trees(trees, change, message):
    trees = dict(trees)
    train = Path(trees["train"])
    if change == "missing":
        trees["test"] = str(train.parent / "nowhere")
    elif change == "one_class":
        for name in ("cat", "dog"):
            for f in (train / name).iterdir():
                f.unlink()
            (train / name).rmdir()
    elif change == "empty_class":
        for f in (train / "cat").iterdir():
            f.unlink()
    else:
        (Path(trees["test"]) / "eel").mkdir()
        Image.new("RGB", (4, 4)).save(Path(trees["test"]) / "eel/x.png")
    with pytest.raises(ConfigError, match=message):
        check_config(_config(trees))


def test_schema_and_checks_refuse_bad_specs(trees):
    with pytest.raises(ConfigError, match="datasets.mine.image_folder"):
        _config({"train": trees["train"]})  # no test tree
    with pytest.raises(ConfigError, match="datasets.mine.image_folder"):
        _config({"root": trees["train"], "test_fraction": 1.5})
    config = _config(trees)
    config["datasets"]["mine"]["sources"] = ["MNIST"]
    with pytest.raises(ConfigError, match="reads that source alone"):
        check_config(config)
    root = _config({"root": trees["train"]})  # dog has 2 readable files: enough for a split
    check_config(root)
    assert dataset_classes(root, "mine") == [0, 1, 2]


# --- the workflow -------------------------------------------------------------------------------


@pytest.mark.slow
def test_image_folder_dataset_runs_through_the_workflow(tmp_path):
    for split in ("train", "test"):
        for c, colour in enumerate(((250, 0, 0), (0, 250, 0), (0, 0, 250))):
            folder = tmp_path / "images" / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (12, 12), tuple(v // (1 + i % 2) for v in colour)).save(
                    folder / f"{i}.png"
                )
    (tmp_path / "images/train/class1/broken.png").write_bytes(b"nope")
    config = copy.deepcopy(_config({"train": "images/train", "test": "images/test"}))
    config["tasks"] = {"three": [0, 1, 2]}
    config["experiments"]["e"]["tasks"] = ["three"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "results/imprint/e.parquet")
    counts = job_counts(run.stdout + run.stderr)
    assert counts["extract_own_images"] == 2 and "prepare_dataset" not in counts
    meta = json.loads((tmp_path / "results/embeddings/mine/pixels/train/meta.json").read_text())
    assert meta["class_names"] == ["class0", "class1", "class2"]
    assert meta["skipped_images"] == 1 and meta["n"] == 12
    import pandas as pd

    res = pd.read_parquet(tmp_path / "results/imprint/e.parquet")
    assert len(res) == 1 and res["accuracy"].item() == pytest.approx(100.0)
