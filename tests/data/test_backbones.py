"""Backbone registry, weight loading from files, transforms; no weights are downloaded."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from imprint.data.backbones import (
    BACKBONES,
    TimmWeights,
    build_backbone,
    get_spec,
    load_weights,
    resolve_weights,
)
from imprint.data.ls_lambda import LS_LAMBDA, registered_ls_lambda

OFFLINE = ["pixels", "resnet18_random"]
TIMM = ["dinov2_vits14", "clip_vit_b16", "convnextv2_femto"]


def test_unknown_backbone_lists_known_names():
    with pytest.raises(ValueError, match="known backbones.*resnet18"):
        build_backbone("resnet19")


def test_ls_lambda_of_the_paper_backbones():
    assert {k: LS_LAMBDA[k] for k in ("resnet18", "resnet50", "vit_b_16", "swin_b")} == {
        "resnet18": 1e-4,
        "resnet50": 1e-4,
        "vit_b_16": 0.1,
        "swin_b": 0.05,
    }
    assert set(LS_LAMBDA) == set(BACKBONES)
    with pytest.raises(ValueError, match="no ls λ registered for backbone 'my_fm'.*resnet18"):
        registered_ls_lambda("my_fm")


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "vit_b_16", "swin_b"])
def test_registered_dim_is_the_width_of_the_replaced_head(name):
    # Built on the meta device: checks the architecture without allocating or initialising it.
    spec = get_spec(name)
    with torch.device("meta"):
        model = spec.factory()
    head = getattr(model, spec.head)
    linear = head if isinstance(head, nn.Linear) else [m for m in head.modules()][-1]
    assert linear.in_features == spec.dim


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_entries_build_and_embed(name):
    state = torch.random.get_rng_state()
    model, transform, dim = build_backbone(name)
    assert torch.equal(torch.random.get_rng_state(), state)  # seeded privately
    assert not model.training
    image = Image.new("RGB", (40, 30), (120, 30, 200))
    x = transform(image).unsqueeze(0)
    with torch.inference_mode():
        out = model(x)
    assert out.shape == (1, dim)
    model2, _, _ = build_backbone(name)
    with torch.inference_mode():
        assert torch.equal(model2(x), out)


def test_pixels_is_the_resized_image():
    model, transform, dim = build_backbone("pixels")
    assert dim == 3 * 16 * 16
    x = transform(Image.new("RGB", (32, 32), (255, 0, 51)))
    assert x.shape == (3, 16, 16)
    out = model(x.unsqueeze(0))[0]
    assert torch.allclose(out[:256], torch.ones(256)) and torch.allclose(
        out[256:512], torch.zeros(256)
    )
    with pytest.raises(ValueError, match="fixed size"):
        build_backbone("pixels", image_size=32)
    with pytest.raises(ValueError, match="no named weights"):
        build_backbone("pixels", "IMAGENET1K_V1")


def test_resnet18_random_uses_resnet18_preprocessing_at_64px():
    _, transform, _ = build_backbone("resnet18_random")
    assert transform.crop_size == [64] and transform.resize_size == [73]
    ref = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    assert transform.mean == ref.mean and transform.std == ref.std
    _, full, _ = build_backbone("resnet18_random", image_size=224)
    assert full.crop_size == [224] and full.resize_size == [256]


def test_resnet18_without_weights_gives_512_dims():
    model, transform, dim = build_backbone("resnet18", weights=None)
    assert dim == 512 and isinstance(model.fc, nn.Identity)
    assert transform.crop_size == [224]
    with torch.inference_mode():
        assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 512)


@pytest.fixture
def saved_resnet18(tmp_path):
    """A full torchvision ResNet-18 (head included) at a seed other than the registry's."""
    torch.manual_seed(1234)
    model = torchvision.models.resnet18(weights=None).eval()
    path = tmp_path / "resnet18_seed1234.pt"
    torch.save(model.state_dict(), path)
    model.fc = nn.Identity()
    return model, path


def test_weights_file_round_trip(saved_resnet18, tmp_path):
    original, path = saved_resnet18
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    loaded, _, _ = build_backbone("resnet18", weights=path)
    random_init, _, _ = build_backbone("resnet18", weights=None)
    with torch.inference_mode():
        expected = original(x)
        assert torch.equal(loaded(x), expected)
        assert not torch.allclose(random_init(x), expected)
    # A state_dict saved from the headless backbone loads too.
    headless = tmp_path / "headless.pth"
    torch.save(loaded.state_dict(), headless)
    again, _, _ = build_backbone("resnet18", weights=str(headless))
    with torch.inference_mode():
        assert torch.equal(again(x), expected)
    assert resolve_weights("resnet18", str(path)) == path


def test_weights_that_do_not_fit_are_a_clear_error(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(nn.Linear(3, 4).state_dict(), path)
    with pytest.raises(RuntimeError, match="do not fit ResNet"):
        build_backbone("resnet18", weights=path)
    model, _, _ = build_backbone("resnet18_random")
    with pytest.raises(RuntimeError, match="Missing key"):
        load_weights(model, path)


def test_unknown_or_missing_weights_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown weights 'IMAGENET22K'.*IMAGENET1K_V1"):
        build_backbone("resnet18", "IMAGENET22K")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_backbone("resnet18", tmp_path / "nothing.pt")


def test_weights_names_resolve_to_the_torchvision_enum():
    v1 = torchvision.models.ResNet50_Weights.IMAGENET1K_V1
    assert resolve_weights("resnet50") is v1
    assert resolve_weights("resnet50", "ResNet50_Weights.IMAGENET1K_V2").name == "IMAGENET1K_V2"
    assert resolve_weights("resnet50", "IMAGENET1K_V2").name == "IMAGENET1K_V2"
    assert resolve_weights("resnet18_random") is None
    assert resolve_weights("resnet18", None) is None


@pytest.mark.parametrize("name", TIMM)
def test_timm_entries_ask_for_the_modern_extra(name, monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # as if timm were not installed
    with pytest.raises(ImportError, match=r"pip install imprint-workflow\[modern\]"):
        build_backbone(name, weights=None)


def test_default_weights_load_from_torchvision_hub_cache(saved_resnet18, tmp_path, monkeypatch):
    """weights='default' goes through torchvision's own loader (WeightsEnum.get_state_dict);
    a seeded-random state_dict put where that loader caches IMAGENET1K_V1 stands in for the
    real file, so the code path is the one that loads real weights, minus the download."""
    original, path = saved_resnet18
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[1]
    assert cached.is_relative_to(tmp_path)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(path.read_bytes())
    model, transform, dim = build_backbone("resnet18")
    x = transform(Image.new("RGB", (50, 40), (10, 200, 90))).unsqueeze(0)
    with torch.inference_mode():
        assert torch.equal(model(x), original(x))
    assert dim == 512 and transform.crop_size == [224]


@pytest.mark.parametrize(
    "name,head,dim,resize",
    [("resnet50", "fc", 2048, 256), ("vit_b_16", "heads", 768, 256), ("swin_b", "head", 1024, 238)],
)
def test_each_papers_backbone_loads_its_default_weights_headless(
    name, head, dim, resize, tmp_path, monkeypatch
):
    # As above for the other three FMs of the paper: a seeded-random checkpoint with its
    # classification head, cached under the file name of the torchvision IMAGENET1K_V1 URL.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(7)
    original = getattr(torchvision.models, name)(weights=None).eval()
    weights = torchvision.models.get_model_weights(name).IMAGENET1K_V1
    cached = Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[1]
    cached.parent.mkdir(parents=True)
    torch.save(original.state_dict(), cached)
    setattr(original, head, nn.Identity())  # the embedding: the head replaced by identity
    model, transform, registered = build_backbone(name)
    x = transform(Image.new("L", (40, 30), 90).convert("RGB")).unsqueeze(0)
    assert x.shape[-2:] == (224, 224) and transform.resize_size == [resize]
    with torch.inference_mode():
        out = model(x)
        assert out.shape == (1, dim) and registered == dim
        assert torch.equal(out, original(x))


@pytest.fixture
def timm_or_skip():
    return pytest.importorskip("timm", reason="the optional timm entries need the modern extra")


@pytest.mark.parametrize("name,dim", [("dinov2_vits14", 384), ("clip_vit_b16", 768)])
def test_timm_entries_build_headless_with_their_own_transform(timm_or_skip, name, dim):
    model, transform, registered = build_backbone(name, weights=None)
    x = transform(Image.new("L", (28, 28), 77).convert("RGB")).unsqueeze(0)
    assert x.shape[-1] == (518 if name.startswith("dinov2") else 224)
    with torch.inference_mode():
        assert model(x).shape == (1, registered) and registered == dim
    with pytest.raises(ValueError, match=f"{name.split('_')[0]}.*image_size 64 is not supported"):
        build_backbone(name, weights=None, image_size=64)


def test_timm_weights_load_through_timm_pretrained_path(timm_or_skip, tmp_path):
    """TimmWeights go through timm.create_model(pretrained=True), the path that fetches real
    weights from the hub; pretrained_cfg_overlay points it at a seeded-random file instead."""
    torch.manual_seed(4321)
    source = timm_or_skip.create_model("convnextv2_femto", pretrained=False, num_classes=0).eval()
    path = tmp_path / "convnextv2_femto_seed4321.pth"
    torch.save(source.state_dict(), path)
    spec = get_spec("convnextv2_femto")
    weights = TimmWeights(
        spec.default_weights.model_name, {"pretrained_cfg_overlay": {"file": str(path)}}
    )
    model, transform, dim = build_backbone("convnextv2_femto", weights=weights)
    from_file, _, _ = build_backbone("convnextv2_femto", weights=path)
    random_init, _, _ = build_backbone("convnextv2_femto", weights=None)
    x = transform(Image.new("RGB", (32, 32), (200, 10, 60))).unsqueeze(0)
    with torch.inference_mode():
        expected = source(x)
        assert expected.shape == (1, dim)
        assert torch.equal(model(x), expected)
        assert torch.equal(from_file(x), expected)
        assert not torch.allclose(random_init(x), expected)
