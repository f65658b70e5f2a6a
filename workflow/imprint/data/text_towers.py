"""CLIP-like backbones' text towers: open_clip models by name, and the text encoder of any
backbone that has one (open_clip; transformers' CLIP and SigLIP), for zero-shot proxies."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def open_clip_module():
    """open_clip, or an ImportError that names the extra to install."""
    try:
        import open_clip
    except ImportError as err:
        raise ImportError(
            "open_clip/ backbones need open_clip_torch: pip install imprint-workflow[open_clip]"
        ) from err
    return open_clip


class OpenClipImage(nn.Module):
    """An open_clip model's image tower as the backbone: `encode_image` (the joint space,
    before any normalisation). The whole model is kept, so its text tower encodes prompts."""

    def __init__(self, clip: nn.Module, architecture: str):
        super().__init__()
        self.clip, self.architecture = clip, architecture

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.clip.encode_image(images)


def _split_open_clip(name: str) -> tuple[str, str | None]:
    """(architecture, pretrained tag or None) of `<architecture>[/<tag>]`, both checked."""
    open_clip = open_clip_module()
    architecture, _, tag = name.partition("/")
    if architecture not in open_clip.list_models():
        raise ValueError(
            f"open_clip has no architecture '{architecture}' (open_clip {open_clip.__version__}); "
            "list them with open_clip.list_models()"
        )
    if tag and not open_clip.get_pretrained_cfg(architecture, tag):
        known = open_clip.list_pretrained_tags_by_model(architecture)
        raise ValueError(
            f"open_clip architecture '{architecture}' has no pretrained tag '{tag}' (known: "
            f"{', '.join(known) or 'none'})"
        )
    return architecture, tag or None


def open_clip_build(name: str, pretrained: bool, pool: str | None, image_size=None):
    """(OpenClipImage, its eval preprocessing). Random init unless `pretrained`; a random init
    takes the tag's preprocessing (mean, std, interpolation, resize) and activation, so it
    differs from the pretrained model in its weights only, and downloads nothing."""
    open_clip = open_clip_module()
    architecture, tag = _split_open_clip(name)
    if pretrained and tag is None:
        raise ValueError(
            f"open_clip/{name}: pretrained weights need a tag (open_clip/{architecture}/<tag>; "
            f"known: {', '.join(open_clip.list_pretrained_tags_by_model(architecture))})"
        )
    kwargs = {"force_image_size": image_size} if image_size is not None else {}
    if pretrained:
        clip, _, preprocess = open_clip.create_model_and_transforms(
            architecture, pretrained=tag, **kwargs
        )
    else:
        cfg = open_clip.get_pretrained_cfg(architecture, tag) if tag else {}
        for key in ("mean", "std", "interpolation", "resize_mode"):
            if key in cfg:
                kwargs[f"image_{key}"] = cfg[key]
        clip, _, preprocess = open_clip.create_model_and_transforms(
            architecture,
            pretrained=None,
            force_quick_gelu=bool(cfg.get("quick_gelu", False)),
            **kwargs,
        )
    return OpenClipImage(clip, architecture), preprocess


class TimmClipImage(nn.Module):
    """A timm CLIP image tower with its head, the image projection (`pool: projection`), so its
    embeddings lie in the space of the text tower open_clip publishes with the same weights:
    `text_model` ("<architecture>/<tag>"), the open_clip model whose pretrained tag loads from
    this timm model's hub repository."""

    def __init__(self, model: nn.Module, text_model: str, pretrained: bool):
        super().__init__()
        self.model, self.text_model, self.pretrained = model, text_model, pretrained

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)


def matching_open_clip(timm_name: str) -> str:
    """The open_clip "<architecture>/<tag>" whose pretrained weights are this timm CLIP image
    tower's (the same Hugging Face repository); a ValueError where open_clip has none."""
    open_clip = open_clip_module()
    repo = f"timm/{timm_name}"
    for architecture, tag in open_clip.list_pretrained():
        cfg = open_clip.get_pretrained_cfg(architecture, tag)
        if cfg.get("hf_hub", "").rstrip("/") == repo and "quickgelu" not in architecture:
            return f"{architecture}/{tag}"
    raise ValueError(
        f"timm model {timm_name} has no text tower: open_clip publishes none with its weights "
        "(pool projection is for timm's CLIP image towers, e.g. "
        "vit_base_patch16_clip_224.openai); or name the model as open_clip/<architecture>/<tag>"
    )


def timm_clip_build(name: str, pretrained: bool, pool: str | None) -> TimmClipImage:
    """A timm CLIP image tower with its projection head (pool projection only)."""
    from imprint.data.providers import timm_module

    if pool != "projection":
        raise ValueError(f"timm backbone {name}: pool is projection or not given, got {pool!r}")
    text_model = matching_open_clip(name)
    model = timm_module().create_model(name, pretrained=pretrained)  # the head: the projection
    return TimmClipImage(model, text_model, pretrained)


def _timm_clip_text(backbone: TimmClipImage) -> Callable[[list[str]], torch.Tensor]:
    # The text tower of the same weights (pretrained), or of open_clip's seeded random init.
    if not backbone.pretrained:
        import warnings

        warnings.warn(
            f"the text tower of {backbone.text_model} is open_clip's seeded random init: the "
            "image tower's weights are not the pretrained ones (a fine-tuned CLIP with both "
            "towers: open_clip/<architecture> with its state_dict)",
            stacklevel=3,
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        clip, _ = open_clip_build(backbone.text_model, backbone.pretrained, None)
    clip.eval()
    return _open_clip_text(clip)


def _open_clip_text(model: OpenClipImage) -> Callable[[list[str]], torch.Tensor]:
    tokenizer = open_clip_module().get_tokenizer(model.architecture)

    def encode(texts: list[str]) -> torch.Tensor:
        return model.clip.encode_text(tokenizer(texts))

    return encode


def _hf_text(model: nn.Module, name: str) -> Callable[[list[str]], torch.Tensor]:
    import inspect

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name)
    # SigLIP was trained on prompts padded to its text tower's full length (64 positions);
    # CLIP on unpadded ones.
    padding: dict = {"padding": True}
    if "siglip" in str(getattr(model.config, "model_type", "")):
        length = model.config.text_config.max_position_embeddings
        padding = {"padding": "max_length", "max_length": length}
    # What the tokenizer gives that the model takes (SigLIP's takes no token_type_ids).
    accepted = set(inspect.signature(model.get_text_features).parameters)

    def encode(texts: list[str]) -> torch.Tensor:
        tokens = tokenizer(texts, truncation=True, return_tensors="pt", **padding)
        return model.get_text_features(**{k: v for k, v in tokens.items() if k in accepted})

    return encode


def is_dual_encoder(model: nn.Module) -> bool:
    """Whether a transformers model has image and text towers in one space (CLIP, SigLIP)."""
    return hasattr(model, "get_image_features") and hasattr(model, "get_text_features")


def text_encoder(backbone: nn.Module, model: str) -> Callable[[list[str]], torch.Tensor]:
    """A function from prompts to their embeddings in `backbone`'s image space, for a backbone
    built from `model` (`<provider>/<name>`); a ValueError where it has no text tower."""
    from imprint.data.providers import PooledHF

    if isinstance(backbone, OpenClipImage):
        return _open_clip_text(backbone)
    if isinstance(backbone, TimmClipImage):
        return _timm_clip_text(backbone)
    if isinstance(backbone, PooledHF) and is_dual_encoder(backbone.model):
        if backbone.pool != "projection":
            raise ValueError(
                f"backbone {model} embeds images with pool '{backbone.pool}', outside the space "
                "its text tower shares: text proxies need pool 'projection' (the default)"
            )
        return _hf_text(backbone.model, model.partition("/")[2])
    raise ValueError(
        f"backbone {model} has no text tower: text proxies need a CLIP-like model "
        "(open_clip/<architecture>[/<tag>], hf/ CLIP or SigLIP, or a timm CLIP image tower "
        "with pool projection)"
    )
