"""Planning's checks of text proxies (GEN text, text_mean; not in the paper): the backbones an
experiment with them may run on, the prompt templates and the datasets' class names, each
refusal one line naming the key."""

import copy
import json

import pytest
from snakemake.utils import validate

from imprint.planning.checks import CONFIG_SCHEMA, check_config, validate_config
from imprint.planning.errors import ConfigError
from imprint.planning.text_checks import check_text_proxies, text_tower


def _config(backbones: dict, gens=("text",), **top) -> dict:
    """One experiment `zs` of `gens` on every backbone of `backbones`, digits, task [0, 1]."""
    config = {
        "datasets": {"digits": {"sources": ["digits"]}},
        "backbones": backbones,
        "mappings": {"none": {}},
        "tasks": {"binary": [0, 1]},
        "experiments": {
            "zs": {
                "grid": {"seeds": [1], "gen": list(gens)},
                "datasets": ["digits"],
                "backbones": list(backbones),
                "mappings": ["none"],
                "tasks": ["binary"],
            }
        },
        **top,
    }
    return config


def checked(config: dict) -> dict:
    """The config through the schema (defaults filled in) and planning's checks."""
    validate_config(config, CONFIG_SCHEMA)
    validate(config, str(CONFIG_SCHEMA))
    check_config(config)
    return config


def refused(config: dict, *culprits: str) -> str:
    with pytest.raises(ConfigError) as err:
        checked(config)
    message = str(err.value)
    assert "\n" not in message, message
    for culprit in culprits:
        assert culprit in message, message
    return message


def _hf_dir(tmp_path, name: str, keys) -> str:
    folder = tmp_path / name
    folder.mkdir()
    if keys is not None:
        (folder / "config.json").write_text(json.dumps({k: {} for k in keys}))
    return str(folder)


CLIP_KEYS = ("text_config", "vision_config", "model_type")
TOWER = "need a text tower"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    # A hub id such as openai/clip-vit-base-patch32 must not exist as a local path here.
    monkeypatch.chdir(tmp_path)


# --------------------------------------------------------------------------- backbones


@pytest.mark.parametrize("gen", ["text", "text_mean"])
def test_a_registry_backbone_is_refused(gen):
    message = refused(_config({"pixels": {}}, gens=[gen]), "experiments.zs", "backbones.pixels")
    assert "text tower" in message and "open_clip" in message


@pytest.mark.parametrize(
    "spec",
    [
        {"model": "timm/resnet18"},
        {"model": "torchvision/resnet18"},
        {"embeddings": "own/{dataset}/{split}.npz"},
    ],
    ids=["timm", "torchvision", "embeddings"],
)
def test_backbones_without_a_text_tower_are_refused(spec):
    refused(_config({"x": spec}), "experiments.zs", "backbones.x", "text tower")


def test_a_concat_backbone_is_refused_even_of_clip_models():
    backbones = {
        "a": {"model": "open_clip/ViT-B-32"},
        "b": {"model": "open_clip/ViT-B-16"},
        "x": {"concat": ["a", "b"]},
    }
    config = _config(backbones)
    config["experiments"]["zs"]["backbones"] = ["x"]
    refused(config, "experiments.zs", "backbones.x", "text tower")


def test_an_hf_folder_without_a_text_config_is_refused(tmp_path):
    vision_only = _hf_dir(tmp_path, "vit", ("vision_config", "model_type"))
    refused(_config({"x": {"model": f"hf/{vision_only}"}}), "experiments.zs", "backbones.x", TOWER)
    text_only = _hf_dir(tmp_path, "bert", ("text_config",))
    refused(_config({"y": {"model": f"hf/{text_only}"}}), "experiments.zs", "backbones.y", TOWER)
    no_config = _hf_dir(tmp_path, "empty", None)
    refused(_config({"z": {"model": f"hf/{no_config}"}}), "experiments.zs", "backbones.z", TOWER)


@pytest.mark.parametrize("text", ["{", '"text_config vision_config"'])
def test_an_hf_folder_whose_config_is_not_a_json_object_is_refused(tmp_path, text):
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "config.json").write_text(text)
    refused(_config({"x": {"model": f"hf/{folder}"}}), "backbones.x")


@pytest.mark.parametrize("pool", ["cls", "mean", "pooler"])
def test_an_hf_clip_pooled_outside_the_projection_is_refused(tmp_path, pool):
    clip = _hf_dir(tmp_path, "clip", CLIP_KEYS)
    config = _config({"x": {"model": f"hf/{clip}", "pool": pool}})
    message = refused(config, "backbones.x.pool", "experiments.zs", "projection")
    assert pool in message
    hub = _config({"y": {"model": "hf/openai/clip-vit-base-patch32", "pool": pool}})
    refused(hub, "backbones.y.pool", "experiments.zs")


def test_the_refusal_names_the_experiment_that_uses_text():
    config = _config({"pixels": {}}, gens=["mean"])
    config["experiments"]["other"] = copy.deepcopy(config["experiments"]["zs"])
    config["experiments"]["other"]["grid"]["gen"] = ["mean", "text_mean"]
    message = refused(config, "experiments.other", "backbones.pixels", TOWER)
    assert "experiments.zs" not in message


# --------------------------------------------------------------------------- acceptances


def test_text_on_an_open_clip_model_is_accepted():
    assert text_tower({"model": "open_clip/ViT-S-32"}) is True
    checked(_config({"clip": {"model": "open_clip/ViT-S-32"}}, gens=["text", "text_mean"]))
    checked(_config({"clip": {"model": "open_clip/ViT-B-32/openai"}}))


def test_text_on_an_hf_clip_folder_is_accepted(tmp_path):
    clip = _hf_dir(tmp_path, "clip", CLIP_KEYS)
    assert text_tower({"model": f"hf/{clip}"}) is True
    checked(_config({"clip": {"model": f"hf/{clip}"}}))
    checked(_config({"clip": {"model": f"hf/{clip}", "pool": "projection"}}))
    # A folder relative to the working directory, as config paths are.
    assert text_tower({"model": "hf/clip"}) is True
    checked(_config({"clip": {"model": "hf/clip"}}))


def test_text_on_an_hf_hub_id_is_left_to_the_job():
    spec = {"model": "hf/openai/clip-vit-base-patch32"}
    assert text_tower(spec) is None
    checked(_config({"clip": spec}))


def test_a_timm_clip_tower_with_pool_projection_is_left_to_the_job_other_pools_refused():
    spec = {"model": "timm/vit_base_patch16_clip_224.openai", "pool": "projection"}
    assert text_tower(spec) is None
    checked(_config({"clip": spec}))
    refused(_config({"clip": spec | {"pool": "cls"}}, gens=("mean",)), "backbones.clip.pool")


def test_text_on_a_layers_backbone_is_refused():
    spec = {"model": "open_clip/ViT-S-32", "layers": ["visual.transformer.resblocks.11:cls"]}
    refused(_config({"oc": spec}), "backbones.oc.layers", "experiments.zs")
    checked(_config({"oc": spec}, gens=("mean",)))  # image GENs take any layers


def test_text_tower_of_every_other_kind_is_false(tmp_path):
    assert text_tower({}) is False
    assert text_tower({"model": "timm/resnet18"}) is False
    assert text_tower({"model": "torchvision/resnet18"}) is False
    assert text_tower({"embeddings": "own/{dataset}/{split}.npz"}) is False
    assert text_tower({"concat": ["a", "b"]}) is False
    assert text_tower({"model": f"hf/{_hf_dir(tmp_path, 'vit', ('vision_config',))}"}) is False


def test_grids_without_text_gens_run_on_any_backbone():
    checked(_config({"pixels": {}, "x": {"model": "timm/resnet18"}}, gens=["mean", "kmeans"]))


# --------------------------------------------------------------------------- templates


@pytest.mark.parametrize("name", ["clip_imagenet", "clip_imagenet_7", "photo"])
def test_the_packaged_template_sets_are_accepted(name):
    checked(_config({"pixels": {}}, gens=["mean"], text_proxies={"templates": name}))


def test_own_templates_holding_the_placeholder_once_are_accepted():
    templates = ["a photo of a {}.", "{}", "a {} in the wild"]
    checked(_config({"pixels": {}}, gens=["mean"], text_proxies={"templates": templates}))


def test_an_unknown_template_set_is_refused():
    config = _config({"pixels": {}}, gens=["mean"], text_proxies={"templates": "clip"})
    message = refused(config, "text_proxies.templates", "'clip'")
    for known in ("clip_imagenet", "clip_imagenet_7", "photo"):
        assert known in message


@pytest.mark.parametrize(
    "templates, where",
    [
        (["a photo of a dog."], "text_proxies.templates[0]"),
        (["a {} next to a {}."], "text_proxies.templates[0]"),
        (["a photo of a {}.", "no placeholder"], "text_proxies.templates[1]"),
        (["a photo of a {}.", "{}{}"], "text_proxies.templates[1]"),
    ],
)
def test_a_template_without_the_placeholder_once_is_refused(templates, where):
    config = _config({"pixels": {}}, gens=["mean"], text_proxies={"templates": templates})
    refused(config, where, "{}")


def test_an_empty_template_list_is_refused():
    refused(_config({"pixels": {}}, text_proxies={"templates": []}), "text_proxies.templates")


# --------------------------------------------------------------------------- class names


def test_class_names_as_a_list_of_names_are_accepted():
    config = _config({"pixels": {}}, gens=["mean"])
    config["datasets"]["digits"]["class_names"] = [f"digit {i}" for i in range(10)]
    checked(config)


@pytest.mark.parametrize("names", [["zero", ""], "zero one", ["zero", 1]])
def test_bad_class_names_are_refused(names):
    config = _config({"pixels": {}}, gens=["mean"])
    config["datasets"]["digits"]["class_names"] = names
    refused(config, "datasets.digits.class_names")


@pytest.mark.parametrize("names", [["zero", ""], "zero one", ["zero", None], {"0": "zero"}])
def test_planning_refuses_bad_class_names_without_the_schema(names):
    # check_config alone (as a caller that skips the schema): planning's own check.
    config = _config({"pixels": {}}, gens=["mean"], text_proxies={"templates": "photo"})
    config["datasets"]["digits"]["class_names"] = names
    with pytest.raises(ConfigError, match=r"datasets\.digits\.class_names"):
        check_text_proxies(config)
