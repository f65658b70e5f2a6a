"""Backbones by provider and name at a seeded random init, against each provider's own API."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torchvision
from _trees import tiny_vit as make_tiny_vit
from PIL import Image
from torch import nn

from imprint.data.backbones import INIT_SEED, build_backbone
from imprint.data.datasets import build_dataset
from imprint.data.extract import extract_embeddings, first_per_class
from imprint.data.ls_lambda import split_model
from imprint.data.providers import PROVIDERS, remove_head


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """One image per class of the offline digits: ten 8 x 8 grey images."""
    return first_per_class(build_dataset("digits", tmp_path_factory.mktemp("data"), "train"), 1)


def seeded(factory):
    """What `factory` builds under the library's INIT_SEED: the same random init."""
    torch.manual_seed(INIT_SEED)
    return factory().eval()


def direct(model, dataset, transform) -> np.ndarray:
    """One forward pass per image with the provider's own model and transform."""
    with torch.inference_mode():
        rows = [model(transform(image.convert("RGB")).unsqueeze(0))[0] for image, _ in dataset]
    return torch.stack(rows).numpy()


def embed(backbone, dataset) -> np.ndarray:
    model, transform, dim = backbone
    emb, _, _ = extract_embeddings(model, dataset, transform, batch_size=4, progress=False)
    assert emb.shape == (len(dataset), dim)
    return emb


def test_timm_by_name_is_timm_itself(digits):
    backbone = build_backbone("mine", None, model="timm/test_vit")
    ref = seeded(lambda: timm.create_model("test_vit", pretrained=False, num_classes=0))
    config = timm.data.resolve_model_data_config(ref)
    ref_transform = timm.data.create_transform(**config, is_training=False)
    assert repr(backbone[1]) == repr(ref_transform)
    assert backbone[2] == ref.num_features
    np.testing.assert_allclose(
        embed(backbone, digits), direct(ref, digits, ref_transform), rtol=1e-5, atol=1e-5
    )
    assert backbone.meta == {
        "provider": "timm",
        "model": "timm/test_vit",
        "provider_version": timm.__version__,
        "weights": None,
        "image_size": None,
    }


def test_registered_timm_entry_is_the_generic_timm_path():
    alias = build_backbone("convnextv2_femto", None)
    generic = build_backbone("timm/convnextv2_femto.fcmae_ft_in1k", None)
    x = alias[1](Image.new("RGB", (50, 40), (10, 200, 90))).unsqueeze(0)
    assert repr(alias[1]) == repr(generic[1]) and alias[2] == generic[2] == 384
    with torch.inference_mode():
        assert torch.equal(alias[0](x), generic[0](x))
    assert alias.meta["model"] == "timm/convnextv2_femto.fcmae_ft_in1k"


def test_torchvision_by_name_is_torchvision_itself(digits):
    backbone = build_backbone("mine", None, model="torchvision/mobilenet_v3_small")
    ref = seeded(lambda: torchvision.models.mobilenet_v3_small(weights=None))
    ref.classifier[3] = nn.Identity()  # the last Linear of its classifier
    weights = torchvision.models.MobileNet_V3_Small_Weights.DEFAULT
    assert repr(backbone[1]) == repr(weights.transforms())
    assert backbone[2] == 1024
    np.testing.assert_allclose(
        embed(backbone, digits), direct(ref, digits, weights.transforms()), rtol=1e-5, atol=1e-5
    )
    assert backbone.meta["provider_version"] == torchvision.__version__


def test_torchvision_named_weights_choose_the_transforms():
    _, transform, _ = build_backbone("x", None, model="torchvision/vit_b_16/IMAGENET1K_SWAG_E2E_V1")
    swag = torchvision.models.ViT_B_16_Weights.IMAGENET1K_SWAG_E2E_V1.transforms()
    assert repr(transform) == repr(swag) and transform.crop_size == [384]


def test_torchvision_by_name_equals_the_registered_entry():
    registered = build_backbone("resnet18", None, image_size=32)
    by_name = build_backbone("resnet18", None, image_size=32, model="torchvision/resnet18")
    x = registered[1](Image.new("RGB", (50, 40), (10, 200, 90))).unsqueeze(0)
    assert repr(registered[1]) == repr(by_name[1]) and by_name[2] == 512
    with torch.inference_mode():
        assert torch.equal(registered[0](x), by_name[0](x))


@pytest.mark.parametrize(
    "arch,replaced",
    [
        ("resnet18", "fc"),
        ("vit_b_16", "heads.head"),
        ("swin_t", "head"),
        ("convnext_tiny", "classifier.2"),
        ("efficientnet_b0", "classifier.1"),
        ("mobilenet_v3_small", "classifier.3"),
    ],
)
def test_the_head_is_found_generically(arch, replaced):
    with torch.device("meta"):  # the architecture only: nothing allocated
        model = remove_head(torchvision.models.get_model(arch, weights=None))
    assert isinstance(model.get_submodule(replaced), nn.Identity)
    assert sum(isinstance(m, nn.Identity) for m in model.modules()) >= 1


@pytest.mark.parametrize(
    "model,factory,size",
    [
        ("timm/test_resnet", lambda: timm.create_model("test_resnet", num_classes=5), None),
        ("torchvision/resnet18", lambda: torchvision.models.resnet18(weights=None), 32),
    ],
)
def test_a_state_dict_file_loads_into_a_model_by_name(tmp_path, model, factory, size):
    torch.manual_seed(1234)  # not the library's seed
    original = factory().eval()
    path = tmp_path / "w.pt"
    torch.save(original.state_dict(), path)  # with its classification head
    loaded = build_backbone("mine", path, image_size=size, model=model)
    random_init = build_backbone("mine", None, image_size=size, model=model)
    remove_head(original) if model.startswith("torchvision") else original.reset_classifier(0)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(loaded[0](x), original(x))
        assert not torch.allclose(random_init[0](x), original(x))
    assert loaded.meta["weights"] == str(path.resolve())


@pytest.mark.parametrize(
    "model,weights,error,match",
    [
        ("keras/resnet", None, ValueError, r"'keras/resnet' is not one of the forms timm/"),
        ("timm/no_such_net", None, ValueError, "timm has no model 'no_such_net'"),
        ("torchvision/resnet19", None, ValueError, "torchvision has no classification model"),
        ("torchvision/resnet18/V9", None, ValueError, r"no weights 'V9' \(known: IMAGENET1K_V1"),
        ("torchvision/resnet18", "IMAGENET1K_V1", FileNotFoundError, "not a state_dict file"),
    ],
)
def test_bad_model_names_are_clear_errors(model, weights, error, match):
    with pytest.raises(error, match=match):
        build_backbone("mine", weights, model=model)


def test_pool_is_for_hf_models_and_projection_for_timm_clip_towers():
    with pytest.raises(ValueError, match="pool is projection or not given, got 'mean'"):
        build_backbone("mine", None, model="timm/test_vit", pool="mean")
    with pytest.raises(ValueError, match="pool applies to hf/ and timm/ models only"):
        build_backbone("mine", None, model="torchvision/resnet18", pool="cls")
    with pytest.raises(ValueError, match="pool applies to hf/ models only"):
        build_backbone("pixels", None, pool="cls")


def test_registered_entries_record_their_source():
    assert build_backbone("pixels").meta == {
        "provider": "imprint",
        "model": "pixels",
        "provider_version": None,
        "weights": None,
        "image_size": None,
    }
    resnet = build_backbone("resnet18_random").meta
    assert resnet["model"] == "torchvision/resnet18" and resnet["image_size"] == 64
    assert resnet["provider_version"] == torchvision.__version__


def test_every_provider_has_a_form():
    assert {split_model(f"{p}/x")[0] for p in PROVIDERS} == set(PROVIDERS)


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    """A two-layer ViT and its image processor in a local directory (nothing fetched)."""
    pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("tiny_vit")
    return folder, make_tiny_vit(folder)


@pytest.mark.parametrize("pool", [None, "cls", "mean", "pooler"])
def test_hf_by_name_is_transformers_itself(digits, tiny_vit, pool):
    import transformers

    folder, config = tiny_vit
    backbone = build_backbone("mine", None, model=f"hf/{folder}", pool=pool)
    ref = seeded(lambda: transformers.ViTModel(config))
    processor = transformers.ViTImageProcessor.from_pretrained(folder)

    def ref_transform(image):
        return processor(images=image, return_tensors="pt")["pixel_values"][0]

    def ref_model(x):
        out = ref(pixel_values=x)
        if pool == "pooler":
            return out.pooler_output
        hidden = out.last_hidden_state
        return hidden.mean(dim=1) if pool == "mean" else hidden[:, 0]

    assert backbone[2] == 32
    np.testing.assert_allclose(
        embed(backbone, digits), direct(ref_model, digits, ref_transform), rtol=1e-5, atol=1e-5
    )
    assert backbone.meta["provider"] == "hf"
    assert backbone.meta["provider_version"] == transformers.__version__


def test_hf_weights_file_and_bad_pool(tiny_vit, tmp_path):
    import transformers

    folder, config = tiny_vit
    torch.manual_seed(99)
    original = transformers.ViTModel(config).eval()
    torch.save(original.state_dict(), tmp_path / "vit.pt")
    loaded = build_backbone("mine", tmp_path / "vit.pt", model=f"hf/{folder}")
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(loaded[0](x), original(pixel_values=x).last_hidden_state[:, 0])
    with pytest.raises(ValueError, match="pool 'max' is not one of cls, mean, pooler"):
        build_backbone("mine", None, model=f"hf/{folder}", pool="max")


# Planning (torch-free): the form of `model:` and the λ it needs, before any job.

CONFIG = """
datasets:
  digits: {sources: [digits]}
backbones:
  mine: {model: MODEL, weights: null}
mappings:
  none: {}
tasks:
  short: [0, 1, 2]
experiments:
  tiny:
    grid: {gen: [GEN], k: [1]}
    datasets: [digits]
    backbones: [mine]
    mappings: [none]
    tasks: [short]
"""


def config_file(tmp_path, model="timm/test_vit", gen="mean", extra=""):
    path = tmp_path / "config.yaml"
    text = CONFIG.replace("MODEL", model).replace("GEN", gen)
    path.write_text(text.replace("weights: null}", f"weights: null{extra}}}"))
    return path


def test_a_model_by_name_passes_check_config(tmp_path, capsys):
    from imprint.cli.main import main

    main(["check-config", str(config_file(tmp_path))])
    assert "valid (1 experiment(s))" in capsys.readouterr().out
    main(["check-config", str(config_file(tmp_path, "hf/org/repo", extra=", pool: mean"))])


@pytest.mark.parametrize(
    "model,gen,extra,match",
    [
        (
            "keras/resnet",
            "mean",
            "",
            r"backbones\.mine\.model: 'keras/resnet' is not one of the forms "
            r"timm/<model name>, torchvision/<model name>\[/<weights enum member>\], hf/",
        ),
        ("timm/a/b", "mean", "", r"backbones\.mine\.model: 'timm/a/b' is not one of the forms"),
        (
            "timm/test_vit",
            "ls",
            "",
            r"backbones\.mine: experiments\.tiny uses GEN ls or kls.*"
            r"set backbones\.mine\.ls_lambda \(the paper's rule: λ = the weight decay",
        ),
        ("timm/test_vit", "mean", ", pool: cls", r"backbones\.mine\.pool: applies to hf/ models"),
        ("timm/x", "mean", ", embeddings: 'e/{split}.npz'", "'model' and 'embeddings' exclude"),
        ("timm/x", "mean", ", concat: [a, b]", "'model' and 'concat' exclude"),
    ],
)
def test_bad_models_are_refused_at_planning(tmp_path, model, gen, extra, match):
    from imprint.planning.checks import check_config_file
    from imprint.planning.errors import ConfigError

    with pytest.raises(ConfigError, match=match):
        check_config_file(config_file(tmp_path, model, gen, extra))


def test_ls_with_the_models_own_lambda_plans(tmp_path):
    from imprint.planning.checks import check_config_file
    from imprint.planning.jobs import ls_lambda

    config = check_config_file(config_file(tmp_path, gen="ls", extra=", ls_lambda: 0.05"))
    assert ls_lambda(config, "mine") == 0.05
    # A model by name never takes a registered entry's λ, even under a registered name.
    config = {"backbones": {"resnet18": {"model": "timm/resnet18"}}}
    assert ls_lambda(config, "resnet18") is None
