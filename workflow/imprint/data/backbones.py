"""Frozen backbones by name: (model without classification head, transform, embedding size)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision.models as tvm
from PIL import Image
from torch import nn
from torchvision.models import WeightsEnum, get_weight
from torchvision.transforms import functional as TF
from torchvision.transforms._presets import ImageClassification  # every weights preset

from imprint.data import providers
from imprint.data.layers import LayerFeatures
from imprint.data.ls_lambda import MODEL_FORMS
from imprint.data.pil_resize import resize_like_pil
from imprint.data.providers import scaled_transforms, timm_model, timm_transform

# Architectures are built under this seed (with the global RNG state restored afterwards), so
# weights=None always gives the same random model.
INIT_SEED = 0

# The offline `pixels` backbone embeds an image as its resized pixels: 3 x 16 x 16 = 768 values.
PIXELS_SIZE = 16


@dataclass(frozen=True)
class TimmWeights:
    """Pretrained weights of a timm model, fetched by timm (Hugging Face hub cache)."""

    model_name: str
    kwargs: Mapping = field(default_factory=dict)


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone.

    factory: builds the architecture at random init. head: the attribute holding the
    classification head, replaced by nn.Identity (None: the factory builds it headless).
    transforms_weights: the torchvision weights whose `.transforms()` preprocess images (also
    for local or no weights, so preprocessing never depends on where the weights came from).
    default_weights: what weights="default" loads (None: random init). image_size: default
    crop size when it differs from the weights' own (offline entries, to keep CPU runs short).
    model: the same architecture by name (`<provider>/<name>`, recorded with the embeddings).
    GEN ls's ridge λ per backbone lives in imprint.data.ls_lambda (torch-free, for planning).
    """

    factory: Callable[[], nn.Module]
    dim: int
    head: str | None = None
    transforms_weights: str | None = None
    default_weights: str | TimmWeights | None = None
    image_size: int | None = None
    make_transform: Callable[[nn.Module, int | None], Callable] | None = None
    model: str | None = None


def _tv(arch: str, head: str, dim: int, enum: str, **kw) -> BackboneSpec:
    member = f"{enum}.IMAGENET1K_V1"
    return BackboneSpec(
        factory=lambda: getattr(tvm, arch)(weights=None),
        dim=dim,
        head=head,
        transforms_weights=member,
        default_weights=kw.pop("default_weights", member),
        model=f"torchvision/{arch}",
        **kw,
    )


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 → float32 in [0, 1], as TF.convert_image_dtype, by true division on every device.

    CUDA divides by a Python scalar as a multiplication by its float32 reciprocal (one bit
    off for about half of the 256 values); a 0-d tensor on the device is divided properly,
    so the GPU batch gives the CPU's PIL-path pixels.
    """
    divisor = torch.full((), 255.0, dtype=torch.float32, device=images.device)
    return images.to(torch.float32).div_(divisor)


class PixelsTransform(nn.Module):
    """Resize to 16 x 16 and scale to [0, 1]; PIL images or uint8 tensors [..., C, H, W] alike.

    PIL images are turned into tensors first, so one image and a batch give the same pixels.
    """

    def forward(self, image) -> torch.Tensor:
        if isinstance(image, Image.Image):
            image = TF.pil_to_tensor(image)
        image = TF.resize(image, [PIXELS_SIZE, PIXELS_SIZE], antialias=True)
        return to_unit_float(image)


def _pixels_transform(model: nn.Module, image_size: int | None) -> Callable:
    if image_size not in (None, PIXELS_SIZE):
        raise ValueError(f"pixels has a fixed size of {PIXELS_SIZE} px (dim 3*16*16 = 768)")
    return PixelsTransform()


class PresetOnBatches(nn.Module):
    """A torchvision weights preset (ImageClassification) on uint8 batches [B, C, H, W].

    The preset's own steps, with its resize done as PIL's bit for bit (imprint.data.pil_resize, in
    the installed Pillow's pass order), so a batch on the GPU gives exactly the tensors the
    preset gives one PIL image at a time.
    """

    def __init__(self, preset: ImageClassification):
        super().__init__()
        self.preset = preset
        self.interpolation = _PIL_FILTERS[preset.interpolation]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        p = self.preset
        in_hw = list(images.shape[-2:])
        # The size torchvision's resize computes for PIL images and tensors alike.
        size = TF._compute_resized_output_size(in_hw, p.resize_size, None)
        if size != in_hw:
            images = resize_like_pil(images, size, self.interpolation)
        images = TF.center_crop(images, p.crop_size)
        images = to_unit_float(images)
        return TF.normalize(images, mean=p.mean, std=p.std)


_PIL_FILTERS = {
    TF.InterpolationMode.BILINEAR: "bilinear",
    TF.InterpolationMode.BICUBIC: "bicubic",
}


def batched_transform(transform: Callable) -> Callable | None:
    """`transform` for uint8 tensor batches [B, C, H, W] (on any device), or None.

    PixelsTransform takes batches as it is; torchvision's bilinear and bicubic weights presets
    run as PresetOnBatches. timm's PIL pipelines have no batched form.
    """
    if isinstance(transform, PixelsTransform):
        return transform
    if isinstance(transform, ImageClassification) and transform.interpolation in _PIL_FILTERS:
        return PresetOnBatches(transform)
    return None


def takes_batches(transform: Callable) -> bool:
    """Whether `transform` has a batched form (see batched_transform)."""
    return batched_transform(transform) is not None


def _timm_spec(model_name: str, dim: int) -> BackboneSpec:
    # The generic timm provider's model and transform (data/providers.py), under a short name.
    return BackboneSpec(
        factory=lambda: timm_model(model_name),
        dim=dim,
        default_weights=TimmWeights(model_name),
        make_transform=lambda model, size: timm_transform(model, model_name, size),
        model=f"timm/{model_name}",
    )


# Every name here has its ls λ in imprint.data.ls_lambda (a test holds the two together).
BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": _tv("resnet18", "fc", 512, "ResNet18_Weights"),
    "resnet50": _tv("resnet50", "fc", 2048, "ResNet50_Weights"),
    "vit_b_16": _tv("vit_b_16", "heads", 768, "ViT_B_16_Weights"),
    "swin_b": _tv("swin_b", "head", 1024, "Swin_B_Weights"),
    # Offline entries for the quickstart and tests.
    "pixels": BackboneSpec(
        factory=lambda: nn.Flatten(start_dim=1),
        dim=3 * PIXELS_SIZE * PIXELS_SIZE,
        make_transform=_pixels_transform,
    ),
    # Random ReLU features of the pixels (a seeded 768 -> 1,024 linear map at PyTorch's default
    # init, then ReLU): a third offline representation, nonlinear and neither of the others.
    "pixels_random_relu": BackboneSpec(
        factory=lambda: nn.Sequential(
            nn.Flatten(start_dim=1), nn.Linear(3 * PIXELS_SIZE * PIXELS_SIZE, 1024), nn.ReLU()
        ),
        dim=1024,
        make_transform=_pixels_transform,
    ),
    # ResNet-18 at a seeded random init and 64 px: ResNet-18's own preprocessing scaled down,
    # since 224 px on CPU runs at only ~20 images/s per core.
    "resnet18_random": _tv(
        "resnet18", "fc", 512, "ResNet18_Weights", default_weights=None, image_size=64
    ),
    # Optional (needs timm).
    "dinov2_vits14": _timm_spec("vit_small_patch14_dinov2.lvd142m", 384),
    "clip_vit_b16": _timm_spec("vit_base_patch16_clip_224.openai", 768),
    "convnextv2_femto": _timm_spec("convnextv2_femto.fcmae_ft_in1k", 384),
}


def get_spec(name: str) -> BackboneSpec:
    """The registry entry for `name`; unknown names raise a ValueError listing the known ones."""
    if name not in BACKBONES:
        raise ValueError(
            f"unknown backbone '{name}'; known backbones: {sorted(BACKBONES)}, or a model by "
            f"name: {', '.join(MODEL_FORMS.values())}"
        )
    return BACKBONES[name]


def resolve_weights(name: str, weights: str | os.PathLike | None = "default"):
    """Turn a weights argument into what `load_weights` takes, or None for random init.

    Accepted: "default", None, a path to a saved state_dict (.pt/.pth or any existing file),
    or a torchvision weights name for this backbone ("IMAGENET1K_V2", "DEFAULT" or the full
    "ResNet50_Weights.IMAGENET1K_V2").
    """
    spec = get_spec(name)
    if weights is None or isinstance(weights, WeightsEnum | TimmWeights):
        return weights
    if isinstance(weights, str) and weights == "default":
        weights = spec.default_weights
        if weights is None or isinstance(weights, TimmWeights):
            return weights
    path = Path(weights)
    if path.suffix in (".pt", ".pth") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"weights file {path} for {name} does not exist")
        return path
    if spec.transforms_weights is None:
        raise ValueError(
            f"backbone '{name}' has no named weights; use 'default', None or a state_dict file"
        )
    enum_name = spec.transforms_weights.split(".")[0]
    member = str(weights).removeprefix(enum_name + ".")
    enum = get_weight(spec.transforms_weights).__class__
    if member not in enum.__members__:
        raise ValueError(
            f"unknown weights '{weights}' for {name}; known: {list(enum.__members__)}, "
            "'default', None or a path to a state_dict file"
        )
    return enum[member]


def weights_label(weights) -> str | None:
    """A short, stable description of resolved weights for metadata."""
    if weights is None or isinstance(weights, str):
        return weights
    if isinstance(weights, WeightsEnum):
        return f"{type(weights).__name__}.{weights.name}"
    if isinstance(weights, TimmWeights):
        return f"timm:{weights.model_name}"
    return str(Path(weights).resolve())


def _state_dict(weights) -> dict:
    if isinstance(weights, str) and not Path(weights).is_file():
        weights = get_weight(weights)  # "ResNet18_Weights.IMAGENET1K_V1"
    if isinstance(weights, WeightsEnum):
        # Cached under $TORCH_HOME/hub/checkpoints; the file name carries a hash prefix that
        # torch checks after download.
        return weights.get_state_dict(progress=True, check_hash=True)
    if isinstance(weights, TimmWeights):
        return timm_model(weights.model_name, pretrained=True, **weights.kwargs).state_dict()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{weights}: expected a state_dict, got {type(state).__name__}")
    return state


def _under_identity(model: nn.Module, key: str) -> bool:
    parts = key.split(".")
    for i in range(1, len(parts)):
        try:
            if isinstance(model.get_submodule(".".join(parts[:i])), nn.Identity):
                return True
        except AttributeError:
            return False
    return False


def load_weights(model: nn.Module, weights) -> nn.Module:
    """Load weights into `model` in place: the one path for every kind of pretrained weights.

    `weights`: a torchvision WeightsEnum member or its full name ("ResNet18_Weights.IMAGENET1K_V1",
    downloaded once into torch's hub cache, see TORCH_HOME), a TimmWeights, or a path to a file
    saved with torch.save(model.state_dict()). Entries for a classification head that the model
    has replaced by nn.Identity are dropped; everything else must match exactly.
    """
    state = _state_dict(weights)
    own = model.state_dict().keys()
    state = {k: v for k, v in state.items() if k in own or not _under_identity(model, k)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise RuntimeError(
            f"weights {weights_label(weights)} do not fit {type(model).__name__}: {err}"
        ) from err
    return model


class Backbone(tuple):
    """(model, transform, embedding dim), unpacked as a 3-tuple, with `meta`: what the
    embeddings' meta.json records of it (provider, model, the provider library's version,
    weights, image size)."""

    def __new__(cls, model: nn.Module, transform: Callable, dim: int, meta: dict):
        self = super().__new__(cls, (model, transform, dim))
        self.meta = meta
        return self


def _meta(model: str | None, name: str, weights, image_size: int | None) -> dict:
    provider = model.partition("/")[0] if model else "imprint"  # imprint: the offline entries
    library = providers.PROVIDERS.get(provider)
    return {
        "provider": provider,
        "model": model or name,
        "provider_version": providers.provider_version(library) if library else None,
        "weights": weights_label(weights),
        "image_size": image_size,
    }


def build_backbone(
    name: str,
    weights: str | os.PathLike | None = "default",
    image_size: int | None = None,
    model: str | None = None,
    pool: str | None = None,
    layers: list[str] | None = None,
) -> Backbone:
    """(model in eval mode with its head replaced by nn.Identity, image transform, embedding dim).

    name: a registry name, or a model by name (`<provider>/<name>`, see data/providers.py).
    model: the model by name of a backbone called `name` (`backbones.<name>.model`); pool: how
    an hf/ model's tokens become one vector. weights: see `resolve_weights` (by name: "default",
    None or a state_dict file). image_size: crop size overriding the entry's default; the
    resize before the crop scales with it, so the preprocessing keeps its proportions.
    layers: `<module name>[:<pool>]` entries: the embedding is then those modules' pooled
    outputs, concatenated (data/layers.py), and meta["layers"] records each one's pool and dim.
    """
    if model is not None or "/" in name:
        return _with_layers(_build_by_name(model or name, weights, image_size, pool), layers, name)
    if pool is not None:
        raise ValueError(f"backbone '{name}': pool applies to hf/ models only")
    spec = get_spec(name)
    resolved = resolve_weights(name, weights)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        net = spec.factory()
    if spec.head is not None:
        setattr(net, spec.head, nn.Identity())
    if resolved is not None:
        load_weights(net, resolved)
    net.eval().requires_grad_(False)
    size = image_size if image_size is not None else spec.image_size
    if spec.make_transform is not None:
        transform = spec.make_transform(net, size)
    else:
        member = (
            resolved if isinstance(resolved, WeightsEnum) else get_weight(spec.transforms_weights)
        )
        transform = scaled_transforms(member, size)
    backbone = Backbone(net, transform, spec.dim, _meta(spec.model, name, resolved, size))
    return _with_layers(backbone, layers, name)


def _with_layers(backbone: Backbone, layers: list[str] | None, name: str) -> Backbone:
    """`backbone` whose embedding is its listed layers' features (data/layers.py), its size
    from one forward pass (a registry entry's `dim` is that of its pooled output)."""
    if layers is None:
        return backbone
    net, transform, _ = backbone
    wrapped = LayerFeatures(net, layers, name).eval()
    dim = providers.embedding_dim(wrapped, transform)  # the pass also resolves each pool
    return Backbone(wrapped, transform, dim, {**backbone.meta, "layers": wrapped.info})


def _build_by_name(
    model: str, weights: str | os.PathLike | None, image_size: int | None, pool: str | None
) -> Backbone:
    """A backbone by provider and name; its size from one forward pass of a dummy image."""
    provider, name = providers.provider_of(model)
    if pool is not None and provider.library not in ("transformers", "timm"):
        raise ValueError(f"backbone {model}: pool applies to hf/ and timm/ models only")
    pretrained = isinstance(weights, str) and weights == "default"
    path = None if weights is None or pretrained else Path(weights)
    if path is not None and not path.is_file():
        raise FileNotFoundError(
            f"weights {str(weights)!r} for {model}: not a state_dict file; a model by name takes "
            "'default' (the provider's pretrained weights), None (random init) or a file"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(INIT_SEED)
        net = provider.build(name, pretrained, pool, image_size)
    if path is not None:
        load_weights(providers.weights_target(net), path)
    net.eval().requires_grad_(False)
    transform = provider.transform(net, name, image_size)
    dim = providers.embedding_dim(net, transform)
    meta = _meta(model, model, path, image_size)
    if pretrained:
        meta["weights"] = f"default:{model}"
    return Backbone(net, transform, dim, meta)
