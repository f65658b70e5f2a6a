"""Planning's checks of text proxies (GEN text, text_mean): a text tower on every backbone
they run on, the prompt templates, class names; torch-free."""

from __future__ import annotations

import json
from pathlib import Path

from imprint.data.ls_lambda import split_model
from imprint.data.prompts import DEFAULT_TEMPLATES, resolve_templates
from imprint.planning.errors import ConfigError
from imprint.planning.jobs import uses_text

# What a backbone needs for text proxies, as messages say it.
TEXT_BACKBONES = (
    "a CLIP-like model by name: open_clip/<architecture>[/<tag>], or hf/ CLIP or SigLIP"
)


def text_tower(spec: dict) -> bool | None:
    """Whether a backbone (its config entry) has a text tower: True for open_clip/ models and
    hf/ folders whose config.json has a text and a vision config; None for an hf/ hub id (its
    config is on the hub) and a timm/ model with pool projection (a CLIP image tower whose text
    tower open_clip publishes): the job checks them; False for every other backbone."""
    model = spec.get("model")
    if not model:
        return False
    provider, name = split_model(model)
    if provider == "open_clip":
        return True
    if provider == "timm" and spec.get("pool") == "projection":
        return None  # a CLIP image tower: whether open_clip has its text tower, the job checks
    if provider != "hf":
        return False
    config = Path(name) / "config.json"
    if not config.is_file():
        return None if not Path(name).exists() else False
    try:
        keys = json.loads(config.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{config} is not readable JSON ({err})") from None
    return isinstance(keys, dict) and "text_config" in keys and "vision_config" in keys


def check_text_proxies(config: dict) -> None:
    """Every experiment with GEN text or text_mean runs on backbones with a text tower (hf/
    ones with pool projection, the space the towers share); the templates and any dataset's
    class_names are well formed."""
    try:
        templates = config.get("text_proxies", {}).get("templates", DEFAULT_TEMPLATES)
        resolve_templates(templates, "text_proxies.templates")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    for name, ds in config["datasets"].items():
        names = ds.get("class_names")
        if names is not None and (
            not isinstance(names, list) or not all(isinstance(n, str) and n for n in names)
        ):
            raise ConfigError(
                f"datasets.{name}.class_names: a list of names by label, got {names!r}"
            )
    for experiment, exp in config["experiments"].items():
        if not uses_text(config, experiment):
            continue
        for backbone in exp["backbones"]:
            spec = config["backbones"][backbone]
            try:
                tower = text_tower(spec)
            except ValueError as err:
                raise ConfigError(f"backbones.{backbone}.model: {err}") from None
            if tower is False:
                raise ConfigError(
                    f"experiments.{experiment}: GEN text and text_mean need a text tower, and "
                    f"backbones.{backbone} ({spec.get('model') or 'a registry backbone'}) has "
                    f"none; use {TEXT_BACKBONES}"
                )
            if spec.get("layers"):
                raise ConfigError(
                    f"backbones.{backbone}.layers: inner modules' features lie outside the space "
                    f"the text tower shares; experiments.{experiment} uses text proxies: give "
                    "them a backbone of the same model without layers"
                )
            if spec.get("pool") not in (None, "projection"):
                raise ConfigError(
                    f"backbones.{backbone}.pool: {spec['pool']} embeds images outside the space "
                    f"its text tower shares; experiments.{experiment} uses text proxies, which "
                    "need pool projection (the default)"
                )
