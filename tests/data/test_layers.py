"""`layers:` on a backbone: its inner modules' pooled outputs, against forward passes written
out by hand (and timm's own forward_intermediates), never against the hooks' own output."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision
from _trees import digit_image_folder
from torch import nn

from imprint.data.backbones import INIT_SEED, build_backbone
from imprint.data.datasets import build_dataset
from imprint.data.extract import extract_to_file, first_per_class
from imprint.data.layer_names import LAYER_POOLS, parse_layers
from imprint.data.layers import LayerFeatures
from imprint.io import load_embeddings


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """One image per class of the offline digits: ten 8 x 8 grey images."""
    return first_per_class(build_dataset("digits", tmp_path_factory.mktemp("data"), "train"), 1)


def batch(transform, dataset) -> torch.Tensor:
    """The dataset's images as one preprocessed batch."""
    return torch.stack([transform(image.convert("RGB")) for image, _ in dataset])


def seeded(factory) -> nn.Module:
    torch.manual_seed(INIT_SEED)
    return factory().eval()


def test_resnet_stages_are_the_spatial_means_of_a_forward_written_out(digits):
    backbone = build_backbone("resnet18_random", None, layers=["layer3", "layer4"])
    net, transform, dim = backbone
    ref = seeded(lambda: torchvision.models.resnet18(weights=None))
    x = batch(transform, digits)
    with torch.inference_mode():
        h = ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))
        stage3 = ref.layer3(ref.layer2(ref.layer1(h)))
        stage4 = ref.layer4(stage3)
        expected = torch.cat([torch.mean(stage3, dim=(2, 3)), torch.mean(stage4, dim=(2, 3))], 1)
        got = net(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # The size comes from the forward pass: the stages' widths, not the registry's 512.
    assert dim == 256 + 512 == sum(layer["dim"] for layer in backbone.meta["layers"])
    assert backbone.meta["layers"] == [
        {"module": "layer3", "pool": "spatial_mean", "dim": 256},
        {"module": "layer4", "pool": "spatial_mean", "dim": 512},
    ]
    # The wrapped model is the registry's, weights and all: its plain output is the pooled one.
    plain, _, plain_dim = build_backbone("resnet18_random", None)
    with torch.inference_mode():
        torch.testing.assert_close(net.model(x), plain(x))
    assert plain_dim == 512 and "layers" not in build_backbone("resnet18_random", None).meta


def _timm_tokens(ref, x):
    """test_vit's tokens after blocks 0 and 1, by hand: patch embedding, position embedding
    (with the class token), then the blocks."""
    h = ref.norm_pre(ref.patch_drop(ref._pos_embed(ref.patch_embed(x))))
    first = ref.blocks[0](h)
    return first, ref.blocks[1](first)


def test_vit_blocks_take_cls_and_the_patch_mean_by_hand_and_by_timm(digits):
    timm = pytest.importorskip("timm")
    backbone = build_backbone(
        "vit_layers", None, model="timm/test_vit", layers=["blocks.0", "blocks.1:cls+mean"]
    )
    net, transform, dim = backbone
    ref = seeded(lambda: timm.create_model("test_vit", pretrained=False, num_classes=0))
    x = batch(transform, digits)
    with torch.inference_mode():
        first, second = _timm_tokens(ref, x)
        got = net(x)
        # timm's own account of the same blocks: (patch tokens, prefix tokens) per block.
        timm_out = ref.forward_intermediates(
            x, indices=[0, 1], return_prefix_tokens=True, output_fmt="NLC", intermediates_only=True
        )
    width = ref.embed_dim
    expected = torch.cat([first[:, 0], second[:, 0], second[:, 1:].mean(dim=1)], dim=1)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    (_, prefix0), (patches1, prefix1) = timm_out
    by_timm = torch.cat([prefix0[:, 0], prefix1[:, 0], patches1.mean(dim=1)], dim=1)
    torch.testing.assert_close(got, by_timm, rtol=1e-5, atol=1e-5)
    # The class token weighs on the mean of all tokens: a mean that kept it would fail above.
    assert not torch.allclose(second.mean(dim=1), second[:, 1:].mean(dim=1), atol=1e-4)
    assert dim == 3 * width
    assert backbone.meta["layers"] == [
        {"module": "blocks.0", "pool": "cls", "dim": width},
        {"module": "blocks.1", "pool": "cls+mean", "dim": 2 * width},
    ]


def test_the_mean_leaves_out_register_tokens():
    timm = pytest.importorskip("timm")
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(
        img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, reg_tokens=3, num_classes=0
    ).eval()
    assert vit.num_prefix_tokens == 4 and timm.__version__  # the class token and 3 registers
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        h = vit.norm_pre(vit._pos_embed(vit.patch_embed(x)))
        tokens = vit.blocks[1](vit.blocks[0](h))
        got = LayerFeatures(vit, ["blocks.1:mean"], "regs")(x)
    assert tokens.shape[1] == 4 + 16
    torch.testing.assert_close(got, tokens[:, 4:].mean(dim=1), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(got, tokens[:, 1:].mean(dim=1), atol=1e-4)


def test_the_normed_last_block_is_the_pooled_embedding(digits):
    # test_vit pools by its class token after the final norm: hooking `norm` gives it back,
    # while blocks.5 (before the norm) does not.
    pytest.importorskip("timm")
    plain, transform, _ = build_backbone("vit", None, model="timm/test_vit")
    normed, _, _ = build_backbone("vit", None, model="timm/test_vit", layers=["norm"])
    last, _, _ = build_backbone("vit", None, model="timm/test_vit", layers=["blocks.5"])
    x = batch(transform, digits)
    with torch.inference_mode():
        torch.testing.assert_close(normed(x), plain(x), rtol=1e-5, atol=1e-5)
        assert not torch.allclose(last(x), plain(x), atol=1e-3)


def test_an_hf_model_hooks_the_transformers_model_inside(tmp_path, digits):
    pytest.importorskip("transformers")
    from _trees import tiny_vit

    tiny_vit(tmp_path / "vit")
    backbone = build_backbone(
        "hf_vit", None, model=f"hf/{tmp_path / 'vit'}", layers=["encoder.layer.0:mean"]
    )
    net, transform, dim = backbone
    x = batch(transform, digits)
    with torch.inference_mode():
        hidden = net.model.model(pixel_values=x, output_hidden_states=True).hidden_states
        got = net(x)
    # hidden_states[1]: the output of layer 0; the mean leaves out the class token.
    torch.testing.assert_close(got, hidden[1][:, 1:].mean(dim=1), rtol=1e-5, atol=1e-5)
    assert dim == 32


def test_extract_to_file_records_the_layers(tmp_path):
    pytest.importorskip("timm")
    digit_image_folder(tmp_path / "imgs", ["zero", "one"], 3)
    source = {"image_folder": {"train": str(tmp_path / "imgs"), "test": str(tmp_path / "imgs")}}
    out = extract_to_file(
        "dino_last",
        source,
        "train",
        tmp_path,
        tmp_path / "emb",
        weights=None,
        model="timm/test_vit",
        layers=["blocks.4", "blocks.5:cls+mean"],
        batch_size=4,
        progress=False,
    )
    meta = json.loads((out / "meta.json").read_text())
    assert meta["layers"] == [
        {"module": "blocks.4", "pool": "cls", "dim": 64},
        {"module": "blocks.5", "pool": "cls+mean", "dim": 128},
    ]
    found = load_embeddings(out)
    assert meta["dim"] == 192 and np.asarray(found.embeddings).shape == (6, 192)
    assert meta["model"] == "timm/test_vit" and meta["class_names"] == ["one", "zero"]
    # The rows are the blocks' tokens by hand, image by image.
    timm = pytest.importorskip("timm")
    ref = seeded(lambda: timm.create_model("test_vit", pretrained=False, num_classes=0))
    _, transform, _ = build_backbone("x", None, model="timm/test_vit")
    dataset = build_dataset(source, tmp_path, "train")
    with torch.inference_mode():
        h = ref.norm_pre(ref._pos_embed(ref.patch_embed(batch(transform, dataset))))
        for block in ref.blocks[:5]:
            h = block(h)
        fifth = h
        sixth = ref.blocks[5](fifth)
    expected = torch.cat([fifth[:, 0], sixth[:, 0], sixth[:, 1:].mean(dim=1)], 1).numpy()
    np.testing.assert_allclose(found.embeddings, expected, rtol=1e-4, atol=1e-5)


def test_an_unknown_module_names_the_backbone_and_close_names():
    with pytest.raises(ValueError, match=r"backbone resnet18_random: .*no module 'layer5'") as e:
        build_backbone("resnet18_random", None, layers=["layer3", "layer5"])
    assert "(close names: layer4, layer3, layer2, layer1" in str(e.value)


def test_a_pool_that_does_not_fit_the_output_is_refused():
    with pytest.raises(ValueError, match=r"layer 'layer4': pool 'cls' needs a \[B, N, D\]"):
        build_backbone("resnet18_random", None, layers=["layer4:cls"])
    with pytest.raises(ValueError, match=r"pool 'spatial_mean' needs a \[B, C, H, W\]"):
        build_backbone("pixels_random_relu", None, layers=["1:spatial_mean"])
    # A module run twice per pass (BasicBlock's shared ReLU) has no one output.
    with pytest.raises(ValueError, match=r"'layer1.0.relu' ran 2 times"):
        build_backbone("resnet18_random", None, layers=["layer1.0.relu"])


def test_auto_and_flatten_on_a_vector_output():
    backbone = build_backbone("pixels_random_relu", None, layers=["1", "2:flatten"])
    net, transform, dim = backbone
    x = torch.rand(3, 3, 16, 16)
    linear = net.model[1]
    with torch.inference_mode():
        pre = x.flatten(1) @ linear.weight.T + linear.bias
        torch.testing.assert_close(net(x), torch.cat([pre, pre.clamp_min(0)], 1))
    assert dim == 2048 and [layer["pool"] for layer in backbone.meta["layers"]] == ["flatten"] * 2


class _TwoOutputs(nn.Module):
    # Like attention modules that return (output, weights): the first element is the output.
    def forward(self, x):
        return x * 2, x * 3


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = _TwoOutputs()

    def forward(self, x):
        return self.inner(x.flatten(1))[1]  # the model itself returns the other element


def test_a_tuple_output_gives_its_first_element():
    x = torch.rand(2, 3, 4, 4)
    got = LayerFeatures(_Toy(), ["inner"], "toy")(x)
    torch.testing.assert_close(got, x.flatten(1) * 2)


def test_layer_strings_parse_torch_free():
    got = parse_layers(["blocks.8", "blocks.11:cls+mean", "stages.2: spatial_mean"])
    assert got == [("blocks.8", "auto"), ("blocks.11", "cls+mean"), ("stages.2", "spatial_mean")]
    assert set(LAYER_POOLS) == {"cls", "mean", "cls+mean", "spatial_mean", "flatten"}
    with pytest.raises(ValueError, match=r"layers\[1\]: 'b:max': unknown pool 'max' \(allowed"):
        parse_layers(["a", "b:max"])
    with pytest.raises(ValueError, match="names no module"):
        parse_layers([":cls"])
    with pytest.raises(ValueError, match="non-empty list"):
        parse_layers([])


CONFIG = """
datasets:
  digits: {sources: [digits]}
backbones:
  BACKBONES
mappings:
  none: {}
tasks:
  short: [0, 1, 2]
experiments:
  tiny:
    grid: {gen: [mean], k: [1]}
    datasets: [digits]
    backbones: [USED]
    mappings: [none]
    tasks: [short]
"""


def plan(tmp_path, backbones: str, used: str):
    from imprint.planning.checks import check_config_file

    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.replace("BACKBONES", backbones).replace("USED", used))
    return check_config_file(path)


def test_layer_sets_plan_alone_and_in_concat(tmp_path):
    backbones = (
        "vit: {model: timm/test_vit, weights: null}\n"
        "  vit_blocks: {model: timm/test_vit, weights: null, layers: [blocks.4, 'blocks.5:mean']}\n"
        "  resnet18_random: {layers: [layer3, layer4]}\n"
        "  both: {concat: [vit, vit_blocks]}"
    )
    config = plan(tmp_path, backbones, "vit_blocks, resnet18_random, both")
    assert config["backbones"]["vit_blocks"]["layers"] == ["blocks.4", "blocks.5:mean"]


@pytest.mark.parametrize(
    "backbones,match",
    [
        (
            "mine: {model: timm/test_vit, layers: [blocks.0, 'blocks.1:max']}",
            r"backbones\.mine\.layers\[1\]: 'blocks\.1:max': unknown pool 'max' \(allowed: "
            r"cls, mean, cls\+mean, spatial_mean, flatten",
        ),
        (
            "a: {model: timm/test_vit}\n  b: {model: timm/test_vit}\n"
            "  mine: {concat: [a, b], layers: [blocks.0]}",
            r"backbones\.mine: 'layers' and 'concat' exclude each other",
        ),
        (
            "mine: {embeddings: 'e/{split}.npz', layers: [blocks.0]}",
            r"backbones\.mine: 'layers' and 'embeddings' exclude each other",
        ),
        ("mine: {layers: [layer3, layer3]}", r"backbones\.mine\.layers\[1\]: .* listed twice"),
        ("mine: {layers: []}", r"backbones\.mine\.layers"),
    ],
)
def test_bad_layers_are_refused_at_planning(tmp_path, backbones, match):
    from imprint.planning.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        plan(tmp_path, backbones, "mine")


def test_imprint_embed_takes_layers(tmp_path):
    from imprint.cli.main import main

    digit_image_folder(tmp_path / "imgs", ["zero", "one"], 2)
    args = ["embed", "--model", "resnet18_random", "--weights", "none", "--images"]
    out = tmp_path / "emb"
    layers = ["--layers", "layer3, layer4:spatial_mean"]
    assert main([*args, str(tmp_path / "imgs"), "--out", str(out), *layers, "-q"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert [(layer["module"], layer["pool"]) for layer in meta["layers"]] == [
        ("layer3", "spatial_mean"),
        ("layer4", "spatial_mean"),
    ]
    assert meta["dim"] == 768 and meta["n"] == 4
