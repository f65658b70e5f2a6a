"""Embedding extraction on the offline digits set with the offline backbones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch.utils.data import Subset

from imprint.backbones import build_backbone
from imprint.datasets import build_dataset, dataset_targets
from imprint.extract import extract_embeddings, extract_to_file, first_per_class, to_rgb
from imprint.io import load_embeddings


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return build_dataset("digits", tmp_path_factory.mktemp("data"), "train")


def direct(model, dataset, transform) -> np.ndarray:
    """One forward pass per image, without the extractor."""
    rows = []
    with torch.inference_mode():
        for i in range(len(dataset)):
            image, _ = dataset[i]
            rows.append(model(transform(image.convert("RGB")).unsqueeze(0))[0].numpy())
    return np.stack(rows)


# ResNet-18 at 32 px and one image per class keeps this quick on a loaded 2-core CPU.
@pytest.mark.parametrize(
    ("backbone", "per_class", "size", "dim"),
    [("pixels", 5, None, 768), ("resnet18_random", 1, 32, 512)],
)
def test_extract_matches_direct_forward(digits, backbone, per_class, size, dim):
    subset = first_per_class(digits, per_class)
    model, transform, d = build_backbone(backbone, image_size=size)
    emb, labels = extract_embeddings(model, subset, transform, batch_size=7, progress=False)
    assert d == dim and emb.shape == (10 * per_class, dim) and labels.shape == (10 * per_class,)
    assert emb.dtype == np.float32 and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, dataset_targets(subset))
    np.testing.assert_allclose(emb, direct(model, subset, transform), rtol=1e-5, atol=1e-5)
    again, labels2 = extract_embeddings(model, subset, transform, batch_size=7, progress=False)
    np.testing.assert_array_equal(again, emb)
    np.testing.assert_array_equal(labels2, labels)


def test_first_per_class_is_deterministic(digits):
    subset = first_per_class(digits, 3)
    targets = dataset_targets(digits)
    assert len(subset) == 30 and list(subset.indices) == sorted(subset.indices)
    assert np.bincount(dataset_targets(subset)).tolist() == [3] * 10
    assert all(targets[i] != targets[subset.indices[0]] for i in range(subset.indices[0]))


def test_grayscale_is_repeated_to_three_channels(digits):
    image, _ = digits[0]
    rgb = np.asarray(to_rgb(image))
    assert rgb.shape == (8, 8, 3) and (rgb == np.asarray(image)[..., None]).all()
    tensor = torch.rand(1, 4, 4)
    assert torch.equal(to_rgb(tensor), tensor.repeat(3, 1, 1))


def test_empty_dataset_is_an_error(digits):
    model, transform, _ = build_backbone("pixels")
    with pytest.raises(ValueError, match="empty"):
        extract_embeddings(model, Subset(digits, []), transform)


def test_extract_to_file_writes_embeddings_and_meta(tmp_path):
    out = extract_to_file(
        "pixels",
        "digits",
        "test",
        tmp_path / "data",
        tmp_path / "emb" / "digits_pixels_test",
        limit_per_class=4,
        classes=[0, 1, 2],
        device="cpu",
        progress=False,
    )
    loaded = load_embeddings(out)
    assert loaded.embeddings.shape == (12, 768) and loaded.embeddings.dtype == np.float32
    assert np.bincount(loaded.labels).tolist() == [4, 4, 4]
    meta = loaded.meta
    assert meta["backbone"] == "pixels" and meta["weights"] is None
    assert (meta["dataset"], meta["split"], meta["n"], meta["dim"]) == ("digits", "test", 12, 768)
    assert meta["classes"] == [0, 1, 2] and meta["limit_per_class"] == 4
    assert meta["device"] == "cpu" and meta["dtype"] == "float32"
    assert meta["torch"] == torch.__version__ and meta["torchvision"] == torchvision.__version__
    # The same call writes the same numbers.
    out2 = extract_to_file(
        "pixels",
        "digits",
        "test",
        tmp_path / "data",
        tmp_path / "emb" / "again",
        limit_per_class=4,
        classes=[0, 1, 2],
        device="cpu",
        progress=False,
    )
    np.testing.assert_array_equal(load_embeddings(out2).embeddings, loaded.embeddings)


def test_extract_to_file_records_weights_file(tmp_path):
    model, _, _ = build_backbone("resnet18_random")
    weights = tmp_path / "r18.pt"
    torch.save(model.state_dict(), weights)
    out = extract_to_file(
        "resnet18_random",
        "digits",
        "train",
        tmp_path,
        tmp_path / "emb.npz",
        weights=weights,
        limit_per_class=1,
        image_size=32,
        device="cpu",
        progress=False,
    )
    meta = load_embeddings(out).meta
    assert meta["weights"] == str(weights.resolve()) and meta["image_size"] == 32
    assert meta["n"] == 10 and meta["dim"] == 512
