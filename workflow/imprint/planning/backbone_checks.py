"""Planning's checks of a backbone by name (`backbones.<name>.model`) and of its `layers`,
torch-free."""

from __future__ import annotations

from imprint.data.layer_names import parse_layer
from imprint.data.ls_lambda import LS_LAMBDA_RULE, split_model
from imprint.planning.errors import ConfigError
from imprint.planning.jobs import uses_ls


def check_model_backbone(config: dict, name: str) -> None:
    """A `model:` backbone has a well-formed `<provider>/<name>` string, is not also made of
    files or other backbones, takes `pool` only as an hf/ model, and has its own ridge λ where
    an experiment uses GEN ls or kls (no registered value applies to a model by name). Whether
    the provider knows the name is checked when the job builds it (that needs torch)."""
    spec = config["backbones"][name]
    try:
        provider, _ = split_model(spec["model"])
    except ValueError as err:
        raise ConfigError(f"backbones.{name}.model: {err}") from None
    for other in ("embeddings", "concat"):
        if spec.get(other):
            raise ConfigError(
                f"backbones.{name}: 'model' and '{other}' exclude each other (a backbone is "
                "extracted from images by a model, or made of files or of other backbones)"
            )
    pool = spec.get("pool")
    if pool is not None and provider != "hf" and (provider, pool) != ("timm", "projection"):
        raise ConfigError(
            f"backbones.{name}.pool: applies to hf/ models, and projection to timm/ CLIP image "
            f"towers (this is a {provider}/ model, pool {pool})"
        )
    check_own_ls_lambda(config, name)


def check_layers(config: dict, name: str) -> None:
    """`layers` is given only to a backbone extracted from images (`model:` or a registry
    name), and each entry has the form `<module name>[:<pool>]` with a known pool. Whether the
    model has the modules, and whether each pool fits its output, is checked when the job
    builds it (that needs torch)."""
    spec = config["backbones"][name]
    if spec.get("layers") is None:
        return
    for other in ("embeddings", "concat"):
        if spec.get(other):
            raise ConfigError(
                f"backbones.{name}: 'layers' and '{other}' exclude each other (layers are taken "
                "from a model that this backbone extracts: model: or a registry name)"
            )
    seen = set()
    for i, entry in enumerate(spec["layers"]):
        try:
            layer = parse_layer(entry)
        except ValueError as err:
            raise ConfigError(f"backbones.{name}.layers[{i}]: {err}") from None
        if layer in seen:
            raise ConfigError(f"backbones.{name}.layers[{i}]: {entry!r} is listed twice")
        seen.add(layer)


def check_own_ls_lambda(config: dict, name: str) -> None:
    """A backbone with no registered λ (a model by name, or its own embedding files) sets
    `backbones.<name>.ls_lambda` wherever an experiment runs GEN ls or kls on it."""
    if config["backbones"][name].get("ls_lambda") is not None:
        return
    for experiment, exp in config["experiments"].items():
        if name in exp["backbones"] and uses_ls(config, experiment):
            raise ConfigError(
                f"backbones.{name}: experiments.{experiment} uses GEN ls or kls, which need "
                f"this backbone's ridge λ: set backbones.{name}.ls_lambda ({LS_LAMBDA_RULE})"
            )
