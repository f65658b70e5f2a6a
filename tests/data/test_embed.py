"""`imprint embed`: any model by name on a folder of images, to the files the workflow caches."""

import json

import numpy as np
import pytest
from PIL import Image

from imprint.cli.main import main
from imprint.io import load_embeddings


def _tree(root, values):
    """A class-per-folder tree of uniform 20 x 20 RGB images, {class: [grey levels]}."""
    for name, levels in values.items():
        (root / name).mkdir(parents=True)
        for i, level in enumerate(levels):
            image = np.full((20, 20, 3), level, dtype=np.uint8)
            Image.fromarray(image).save(root / name / f"{i}.png")


def test_embed_an_image_folder_with_the_pixels_backbone(tmp_path, capsys):
    # A uniform image stays uniform under the resize, so `pixels` embeds it as 768 copies of
    # level / 255: the expected rows are known by hand. Labels follow sorted folder names.
    _tree(tmp_path / "imgs", {"dog": [200, 210], "cat": [40, 50, 60]})
    (tmp_path / "imgs/dog/broken.jpg").write_text("not an image")
    out = tmp_path / "emb"
    assert (
        main(
            [
                "embed",
                "--model",
                "pixels",
                "--images",
                str(tmp_path / "imgs"),
                "--out",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    found = load_embeddings(out)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["class_names"] == ["cat", "dog"] and meta["skipped_images"] == 1
    assert meta["provider"] == "imprint" and meta["model"] == "pixels" and meta["split"] == "train"
    expected = {0: [40, 50, 60], 1: [200, 210]}
    for label, levels in expected.items():
        rows = np.asarray(found.embeddings)[found.labels == label]
        np.testing.assert_allclose(
            rows, np.repeat(np.array(levels)[:, None] / 255, 768, 1), rtol=1e-6
        )
    assert "wrote" in capsys.readouterr().out


def test_embed_a_held_out_split_and_a_model_by_name(tmp_path):
    _tree(tmp_path / "imgs", {"a": [10, 20, 30, 40], "b": [100, 110, 120, 130]})
    args = ["embed", "--images", str(tmp_path / "imgs"), "--test-fraction", "0.25", "-q"]
    for split in ("test", "train"):
        out = ["--split", split, "--out", str(tmp_path / split)]
        assert main([*args, "--model", "pixels", *out]) == 0
    test, train = load_embeddings(tmp_path / "test"), load_embeddings(tmp_path / "train")
    # One of four images per class held out, the other three trained on: by the grey levels
    # (uniform images embed as level / 255), each image in exactly one split.
    levels = {
        split: {(int(y), round(float(x[0]) * 255)) for x, y in zip(s.embeddings, s.labels)}
        for split, s in (("test", test), ("train", train))
    }
    assert sorted(y for y, _ in levels["test"]) == [0, 1]
    assert sorted(y for y, _ in levels["train"]) == [0] * 3 + [1] * 3
    every = {(0, v) for v in (10, 20, 30, 40)} | {(1, v) for v in (100, 110, 120, 130)}
    assert levels["test"] | levels["train"] == every and not levels["test"] & levels["train"]

    pytest.importorskip("timm")
    model = ["--model", "timm/test_vit", "--weights", "none", "--out", str(tmp_path / "vit")]
    assert main([*args, "--split", "test", *model]) == 0
    meta = json.loads((tmp_path / "vit/meta.json").read_text())
    assert (
        meta["provider"] == "timm" and meta["model"] == "timm/test_vit" and meta["weights"] is None
    )
    assert meta["provider_version"] and meta["n"] == 2 and meta["class_names"] == ["a", "b"]
    # The exact preprocessing: timm's own eval transform of the model, as it prints itself.
    import timm

    vit = timm.create_model("test_vit", pretrained=False, num_classes=0)
    config = timm.data.resolve_model_data_config(vit)
    expected = timm.data.create_transform(**config, is_training=False)
    assert meta["preprocessing"] == " ".join(repr(expected).split())
    assert "Normalize(mean=" in meta["preprocessing"]


def test_embed_refuses_to_write_into_its_images_and_a_fraction_without_a_folder(tmp_path, capsys):
    _tree(tmp_path / "imgs", {"a": [1], "b": [2]})
    inside = ["embed", "--model", "pixels", "--images", str(tmp_path / "imgs"), "-q"]
    assert main([*inside, "--out", str(tmp_path / "imgs/a/emb")]) == 2
    assert "one of this command's inputs (images)" in capsys.readouterr().err
    assert not (tmp_path / "imgs/a/emb").exists()
    other = ["embed", "--model", "pixels", "--dataset", "digits", "--test-fraction", "0.2"]
    assert main([*other, "--out", str(tmp_path / "x")]) == 2
    assert "--test-fraction splits an --images folder" in capsys.readouterr().err
