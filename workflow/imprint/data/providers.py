"""Backbones by provider and name (`timm/…`, `torchvision/…`, `hf/…`, `open_clip/…`): any
model, no code."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision.models import WeightsEnum, get_model, get_model_weights, list_models

from imprint.data.ls_lambda import split_model
from imprint.data.text_towers import (
    OpenClipImage,
    TimmClipImage,
    is_dual_encoder,
    open_clip_build,
    timm_clip_build,
)

# The attributes that hold a torchvision classifier's head, in the order they are looked for.
HEAD_ATTRIBUTES = ("fc", "classifier", "heads", "head")
# projection: a CLIP-like model's image features in the space its text tower shares (its
# default); cls, mean and pooler read the vision tower's tokens.
HF_POOLS = ("cls", "mean", "pooler", "projection")


@dataclass(frozen=True)
class Provider:
    """How one library builds a model by name.

    build(name, pretrained, pool, image_size): the headless model (pooled features out; random
    init unless pretrained). transform(model, name, image_size): its own eval preprocessing of
    one image.
    library: the module whose version is recorded with the embeddings.
    """

    build: Callable[[str, bool, str | None, int | None], nn.Module]
    transform: Callable[[nn.Module, str, int | None], Callable]
    library: str


def timm_module():
    """timm, or an ImportError that names the extra to install."""
    try:
        import timm
    except ImportError as err:
        raise ImportError("this backbone needs timm: pip install imprint-workflow[modern]") from err
    return timm


def timm_model(name: str, pretrained: bool = False, **kwargs) -> nn.Module:
    """A timm model without its head (num_classes=0: pooled features out)."""
    timm = timm_module()
    if ":" not in name and not timm.is_model(name.split(".")[0]):
        raise ValueError(
            f"timm has no model '{name}' (timm {timm.__version__}); list them with "
            "timm.list_models('<pattern>')"
        )
    return timm.create_model(name, pretrained=pretrained, num_classes=0, **kwargs)


def timm_transform(model: nn.Module, name: str, image_size: int | None) -> Callable:
    """timm's own eval transform for `model` (its data config)."""
    timm = timm_module()
    config = timm.data.resolve_model_data_config(model)
    # timm's ViTs are built for one input size (their position embeddings): a smaller crop
    # would fail inside the forward pass, so refuse it here, by name.
    if image_size is not None and (3, image_size, image_size) != tuple(config["input_size"]):
        raise ValueError(
            f"timm backbone {name} takes {config['input_size'][1]} px images; "
            f"image_size {image_size} is not supported (leave it unset)"
        )
    return timm.data.create_transform(**config, is_training=False)


def torchvision_weights(name: str) -> WeightsEnum:
    """The weights of `<arch>[/<member>]`: the named member, else the architecture's default."""
    arch, _, member = name.partition("/")
    if arch not in list_models(module=torchvision.models):
        raise ValueError(
            f"torchvision has no classification model '{arch}' (torchvision "
            f"{torchvision.__version__}); list them with torchvision.models.list_models()"
        )
    enum = get_model_weights(arch)
    if not member:
        return enum.DEFAULT
    member = member.removeprefix(enum.__name__ + ".")
    if member not in enum.__members__:
        raise ValueError(
            f"torchvision model '{arch}' has no weights '{member}' (known: "
            f"{', '.join(enum.__members__)})"
        )
    return enum[member]


def _torchvision_build(name: str, pretrained: bool, pool: str | None, image_size=None) -> nn.Module:
    member = torchvision_weights(name)
    arch = name.partition("/")[0]
    if pretrained:
        return remove_head(get_model(arch, weights=member))
    # The builders shape the architecture from the weights they load: the ViTs' SWAG weights
    # take 384 or 518 px inputs, which a random init must take too.
    size = member.meta.get("min_size")
    kwargs = {"image_size": size[0]} if size != type(member).DEFAULT.meta.get("min_size") else {}
    return remove_head(get_model(arch, weights=None, **kwargs))


def remove_head(model: nn.Module) -> nn.Module:
    """Replace the last Linear of the model's head (fc, classifier, heads or head) by identity."""
    for attribute in HEAD_ATTRIBUTES:
        head = getattr(model, attribute, None)
        if not isinstance(head, nn.Module):
            continue
        linears = [n for n, m in head.named_modules() if isinstance(m, nn.Linear)]
        if linears:
            path = ".".join(filter(None, (attribute, linears[-1])))
            parent, _, child = path.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, nn.Identity())
            return model
    raise ValueError(
        f"{type(model).__name__}: no Linear classification head found under "
        f"{', '.join(HEAD_ATTRIBUTES)}"
    )


def torchvision_transform(model: nn.Module, name: str, image_size: int | None) -> Callable:
    """The weights' own transforms (the named member's, else the default's), crop scaled."""
    return scaled_transforms(torchvision_weights(name), image_size)


def scaled_transforms(member: WeightsEnum, image_size: int | None) -> Callable:
    """`member.transforms()`, with crop `image_size` and the resize before it scaled alike."""
    if image_size is None:
        return member.transforms()
    kwargs = dict(member.transforms.keywords)
    crop, resize = kwargs.get("crop_size", 224), kwargs.get("resize_size", 256)
    kwargs.update(crop_size=image_size, resize_size=round(image_size * resize / crop))
    return member.transforms(**kwargs)


def _transformers():
    try:
        import transformers
    except ImportError as err:
        raise ImportError(
            "hf/ backbones need transformers: pip install imprint-workflow[hf]"
        ) from err
    return transformers


class PooledHF(nn.Module):
    """A transformers vision model whose output is one vector per image (`pool`).

    A CLIP-like model (image and text towers) gives its image features by default (pool
    projection); cls, mean and pooler read its vision tower's output.
    """

    def __init__(self, model: nn.Module, pool: str | None):
        super().__init__()
        dual = is_dual_encoder(model)
        pool = pool or ("projection" if dual else "cls")
        if pool not in HF_POOLS:
            raise ValueError(f"pool '{pool}' is not one of {', '.join(HF_POOLS)}")
        if pool == "projection" and not dual:
            raise ValueError(
                f"{type(model).__name__} has no image projection (pool projection is for CLIP-"
                "like models); use cls, mean or pooler"
            )
        self.model, self.pool = model, pool

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.pool == "projection":
            return self.model.get_image_features(pixel_values=pixel_values)
        vision = self.model.vision_model if is_dual_encoder(self.model) else self.model
        out = vision(pixel_values=pixel_values)
        if self.pool == "pooler":
            if getattr(out, "pooler_output", None) is None:
                raise ValueError(
                    f"{type(self.model).__name__} has no pooler output; use cls or mean"
                )
            return out.pooler_output.flatten(1)
        hidden = out.last_hidden_state
        return hidden[:, 0] if self.pool == "cls" else hidden.mean(dim=1)


def _hf_build(name: str, pretrained: bool, pool: str | None, image_size=None) -> nn.Module:
    auto = _transformers().AutoModel
    if pretrained:
        model = auto.from_pretrained(name)
    else:
        config = _transformers().AutoConfig.from_pretrained(name)
        model = auto.from_config(config)
    return PooledHF(model, pool)


class HFTransform:
    """A transformers image processor on one PIL image: its pixel values, [C, H, W]."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]


def _hf_transform(model: nn.Module, name: str, image_size: int | None) -> Callable:
    if image_size is not None:
        raise ValueError(f"hf backbone {name}: image_size is not supported (leave it unset)")
    return HFTransform(_transformers().AutoImageProcessor.from_pretrained(name))


def _timm_build(name: str, pretrained: bool, pool: str | None, image_size=None) -> nn.Module:
    # pool projection: a CLIP image tower with its projection head (and a text tower).
    if pool is None:
        return timm_model(name, pretrained)
    return timm_clip_build(name, pretrained, pool)


def _open_clip_build(name: str, pretrained: bool, pool: str | None, image_size=None):
    model, preprocess = open_clip_build(name, pretrained, pool, image_size)
    model.preprocess = preprocess  # open_clip makes both at once; transform() hands it out
    return model


def _open_clip_transform(model: nn.Module, name: str, image_size: int | None) -> Callable:
    return model.preprocess


PROVIDERS: dict[str, Provider] = {
    "timm": Provider(_timm_build, timm_transform, "timm"),
    "torchvision": Provider(_torchvision_build, torchvision_transform, "torchvision"),
    "hf": Provider(_hf_build, _hf_transform, "transformers"),
    "open_clip": Provider(_open_clip_build, _open_clip_transform, "open_clip"),
}


def provider_of(model: str) -> tuple[Provider, str]:
    """(provider, the name it builds) of a `<provider>/<name>` model string."""
    provider, name = split_model(model)
    return PROVIDERS[provider], name


def provider_version(provider: Provider) -> str | None:
    """The provider's library's own version (None where it is not installed)."""
    try:
        return importlib.import_module(provider.library).__version__
    except ImportError:
        return None


def weights_target(model: nn.Module) -> nn.Module:
    """The module a state_dict file loads into: an hf/ model's own (AutoModel's keys), an
    open_clip model's whole (image and text towers, open_clip's keys)."""
    if isinstance(model, PooledHF | TimmClipImage):
        return model.model
    return model.clip if isinstance(model, OpenClipImage) else model


def embedding_dim(model: nn.Module, transform: Callable) -> int:
    """The embedding size: one forward pass of a dummy image through transform and model."""
    x = transform(Image.new("RGB", (64, 64), (128, 128, 128))).unsqueeze(0)
    with torch.inference_mode():
        return int(model(x).reshape(1, -1).shape[1])
