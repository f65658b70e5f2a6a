"""Embedding extraction on the offline digits set with the offline backbones."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch.utils.data import Subset

from imprint.data.backbones import PresetOnBatches, batched_transform, build_backbone, takes_batches
from imprint.data.datasets import build_dataset, dataset_targets, image_array
from imprint.data.extract import (
    choose_precision,
    extract_embeddings,
    extract_to_file,
    first_per_class,
    mixed_precision_error,
    relative_error,
    to_rgb,
)
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
    emb, labels, info = extract_embeddings(
        model, subset, transform, batch_size=7, progress=False, batched=False
    )
    assert info["path"] == "per_image" and info["precision"] == "float32"
    assert d == dim and emb.shape == (10 * per_class, dim) and labels.shape == (10 * per_class,)
    assert emb.dtype == np.float32 and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, dataset_targets(subset))
    np.testing.assert_allclose(emb, direct(model, subset, transform), rtol=1e-5, atol=1e-5)
    again, labels2, _ = extract_embeddings(
        model, subset, transform, batch_size=7, progress=False, batched=False
    )
    np.testing.assert_array_equal(again, emb)
    np.testing.assert_array_equal(labels2, labels)


@pytest.mark.parametrize(("backbone", "size"), [("pixels", None), ("resnet18_random", 64)])
def test_batched_path_gives_the_per_image_embeddings_exactly(digits, backbone, size):
    subset = first_per_class(digits, 4)
    model, transform, _ = build_backbone(backbone, image_size=size)
    per_image = extract_embeddings(model, subset, transform, 16, progress=False, batched=False)
    batched = extract_embeddings(model, subset, transform, 16, progress=False)
    assert batched.info["path"] == "batched"
    np.testing.assert_array_equal(batched.labels, per_image.labels)
    np.testing.assert_array_equal(batched.embeddings, per_image.embeddings)


PRESETS = {  # the weights' own transforms: bilinear (resize 256 / 232) and bicubic (238)
    "resnet18": torchvision.models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet50_v2": torchvision.models.ResNet50_Weights.IMAGENET1K_V2,
    "vit_b_16": torchvision.models.ViT_B_16_Weights.IMAGENET1K_V1,
    "swin_b": torchvision.models.Swin_B_Weights.IMAGENET1K_V1,
}


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize(
    ("shape", "channels"),
    # digits, MNIST, CIFAR-10/SVHN, USPS; one wider than high; one shrunk more in height.
    [((8, 8), 1), ((28, 28), 1), ((32, 32), 3), ((16, 16), 1), ((20, 36), 3), ((700, 300), 3)],
)
def test_batched_presets_give_the_pil_tensors_bit_for_bit(preset, shape, channels):
    transform = PRESETS[preset].transforms()
    batch_transform = batched_transform(transform)
    rng = np.random.default_rng(sum(shape))
    pixels = rng.integers(0, 256, size=(3, *shape, channels), dtype=np.uint8)
    pil = torch.stack(
        [transform(to_rgb(Image.fromarray(p[..., 0] if channels == 1 else p))) for p in pixels]
    )
    batch = torch.from_numpy(pixels).permute(0, 3, 1, 2).expand(-1, 3, -1, -1)
    assert torch.equal(batch_transform(batch), pil)
    # torch's own resize (what a plain tensor transform does) is not PIL's.
    assert not torch.equal(transform(batch), pil)


def test_batched_path_falls_back_when_it_cannot_match_pil(digits, monkeypatch, caplog):
    # As an older or newer Pillow whose resize rounds otherwise would: the check on the first
    # images fails, so the per-image path runs (or, when batched is forced, an error says so).
    subset = first_per_class(digits, 2)
    model, transform, _ = build_backbone("resnet18_random", image_size=32)
    exact = PresetOnBatches.forward
    monkeypatch.setattr(PresetOnBatches, "forward", lambda self, x: exact(self, x) + 1e-3)
    with caplog.at_level("WARNING"):
        run = extract_embeddings(model, subset, transform, 8, progress=False)
    assert run.info["path"] == "per_image" and "does not reproduce the PIL path" in caplog.text
    with pytest.raises(ValueError, match="does not reproduce the PIL path"):
        extract_embeddings(model, subset, transform, 8, progress=False, batched=True)


def test_batched_path_only_for_transforms_it_can_reproduce(digits):
    assert takes_batches(build_backbone("resnet18_random")[1])
    assert takes_batches(build_backbone("pixels")[1])
    assert takes_batches(torchvision.models.Swin_B_Weights.IMAGENET1K_V1.transforms())
    plain = torchvision.transforms.Compose([torchvision.transforms.PILToTensor()])
    assert not takes_batches(plain)
    model, _, _ = build_backbone("pixels")
    with pytest.raises(ValueError, match="batched extraction needs"):
        extract_embeddings(model, first_per_class(digits, 1), plain, batched=True)


def test_mixed_precision_only_within_tolerance(digits):
    model, transform, _ = build_backbone("resnet18_random", image_size=32)
    images = torch.stack([transform(digits[i][0].convert("RGB")) for i in range(8)])
    with torch.inference_mode():
        exact = model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            approx = model(images).float()
    by_hand = float(((approx - exact).norm(dim=1) / exact.norm(dim=1)).max())
    assert by_hand > 1e-3  # bfloat16 keeps 8 bits of mantissa: too coarse for 1e-3
    assert mixed_precision_error(model, images, torch.bfloat16) == pytest.approx(by_hand, rel=1e-4)
    dtype, err = choose_precision(model, images, "bfloat16")
    assert dtype is None and err == pytest.approx(by_hand, rel=1e-4)
    dtype, err = choose_precision(model, images, "bfloat16", tolerance=1.0)
    assert dtype is torch.bfloat16
    assert choose_precision(model, images, "auto") == (None, None)  # CPU: float32, no trial
    with pytest.raises(ValueError, match="unknown precision 'half'.*auto, float32"):
        choose_precision(model, images, "half")
    subset = first_per_class(digits, 1)
    rejected = extract_embeddings(model, subset, transform, progress=False, precision="bfloat16")
    plain = extract_embeddings(model, subset, transform, progress=False, precision="float32")
    assert rejected.info["precision"] == "float32" and rejected.info["amp_relative_error"] > 1e-3
    np.testing.assert_array_equal(rejected.embeddings, plain.embeddings)
    allowed = extract_embeddings(
        model, subset, transform, progress=False, precision="bfloat16", tolerance=1.0
    )
    assert allowed.info["precision"] == "bfloat16"
    assert (
        relative_error(torch.from_numpy(allowed.embeddings), torch.from_numpy(plain.embeddings))
        < 0.05
    )


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
    def extract(name):
        return extract_to_file(
            "pixels",
            "digits",
            "test",
            tmp_path / "data",
            tmp_path / "emb" / name,
            limit_per_class=4,
            classes=[0, 1, 2],
            device="cpu",
            progress=False,
        )

    out = extract("digits_pixels_test")
    loaded = load_embeddings(out)
    assert loaded.embeddings.shape == (12, 768) and loaded.embeddings.dtype == np.float32
    assert np.bincount(loaded.labels).tolist() == [4, 4, 4]
    meta = loaded.meta
    assert meta["backbone"] == "pixels" and meta["weights"] is None
    assert (meta["dataset"], meta["split"], meta["n"], meta["dim"]) == ("digits", "test", 12, 768)
    assert meta["classes"] == [0, 1, 2] and meta["limit_per_class"] == 4
    assert meta["device"] == "cpu" and meta["dtype"] == "float32"
    assert meta["path"] == "batched" and meta["precision"] == "float32"
    assert meta["torch"] == torch.__version__ and meta["torchvision"] == torchvision.__version__
    # The same call writes the same numbers.
    out2 = extract("again")
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


@pytest.mark.gpu
def test_cuda_extraction_matches_cpu(digits):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    subset = first_per_class(digits, 10)
    cpu_model, transform, _ = build_backbone("resnet18_random")
    gpu_model, _, _ = build_backbone("resnet18_random")
    cpu = extract_embeddings(cpu_model, subset, transform, device="cpu", progress=False)
    for precision in ("float32", "auto"):
        gpu = extract_embeddings(
            gpu_model, subset, transform, device="cuda", progress=False, precision=precision
        )
        assert gpu.info["path"] == "batched" and gpu.info["device"].startswith("cuda")
        np.testing.assert_array_equal(gpu.labels, cpu.labels)
        # The GPU gets the CPU's input tensors exactly (PIL's resize, bit for bit); the
        # forward pass differs by float rounding, plus at most 1e-3 from mixed precision.
        err = relative_error(torch.from_numpy(gpu.embeddings), torch.from_numpy(cpu.embeddings))
        assert err <= 1e-4 + (1e-3 if gpu.info["precision"] != "float32" else 0), precision
    images = image_array(subset).expand(-1, 3, -1, -1)
    on_gpu = batched_transform(transform)(images.cuda()).cpu()
    assert torch.equal(on_gpu, torch.stack([transform(to_rgb(im)) for im, _ in subset]))


def test_unit_float_pixels_are_true_divisions_by_255():
    from imprint.data.backbones import to_unit_float

    values = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    expected = np.arange(256, dtype=np.float32).reshape(1, 16, 16) / np.float32(255.0)
    assert np.array_equal(to_unit_float(values).numpy(), expected)
    assert torch.equal(
        to_unit_float(values),
        torchvision.transforms.functional.convert_image_dtype(values, torch.float),
    )
