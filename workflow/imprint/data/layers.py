"""Intermediate-layer features: the outputs of named inner modules, pooled per image.

`backbones.<name>.layers` lists `<module name>[:<pool>]` entries (data/layer_names.py parses
them, torch-free). Module names are those of `model.named_modules()`: of the timm or
torchvision model itself, of the transformers model inside an hf/ backbone. A forward hook on
each listed module keeps its output while the model's forward runs once per batch; an output
that is a tuple (or a transformers ModelOutput) is taken by its first element. Each output
becomes one vector per image by its pool:

- cls: token 0 of a [B, N, D] output;
- mean: the mean of the tokens after the prefix tokens of [B, N, D]: the model's
  `num_prefix_tokens` where it has one (timm ViTs: the class token and any register tokens),
  else 1 + the config's `num_register_tokens` (transformers models with registers), else 1
  (the class token);
- cls+mean: the two concatenated (DINOv2's linear-evaluation features of the last block);
- spatial_mean: the mean over H, W of a [B, C, H, W] output (a CNN stage);
- flatten: the output flattened;
- auto (no pool given): [B, C, H, W] spatial_mean, [B, N, D] cls, [B, D] as is (flatten).

The layers' vectors are concatenated in the listed order. The outputs of timm ViT `blocks.N`
are before the model's final norm: hook `norm` for the normed last block.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import torch
from torch import nn

from imprint.data.layer_names import AUTO, parse_layers
from imprint.data.providers import weights_target

# What each pool needs of an output's shape: (number of dimensions, its form in messages).
_NEEDS = {
    "cls": (3, "[B, N, D] (tokens)"),
    "mean": (3, "[B, N, D] (tokens)"),
    "cls+mean": (3, "[B, N, D] (tokens)"),
    "spatial_mean": (4, "[B, C, H, W] (a feature map)"),
}
_AUTO = {4: "spatial_mean", 3: "cls", 2: "flatten"}


def prefix_tokens(model: nn.Module) -> int:
    """How many leading tokens `mean` leaves out: `num_prefix_tokens` (timm), else 1 + the
    config's `num_register_tokens` (transformers), else 1 (the class token)."""
    count = getattr(model, "num_prefix_tokens", None)
    if isinstance(count, int):
        return count
    registers = getattr(getattr(model, "config", None), "num_register_tokens", None)
    return 1 + (registers if isinstance(registers, int) else 0)


def find_module(model: nn.Module, name: str, backbone: str) -> nn.Module:
    """The submodule `name` of `model`; a ValueError names the backbone and close names."""
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.5)
    top = ", ".join(n for n, _ in model.named_children())
    hint = f"close names: {', '.join(close)}" if close else f"its top-level modules: {top}"
    raise ValueError(
        f"backbone {backbone}: {type(model).__name__} has no module '{name}' ({hint}; the names "
        "are those of model.named_modules())"
    )


def first_tensor(output) -> torch.Tensor:
    """A module's output as one tensor: a tuple's or a ModelOutput's first element."""
    if hasattr(output, "to_tuple"):  # transformers' ModelOutput
        output = output.to_tuple()
    if isinstance(output, tuple | list):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise ValueError(f"the output is a {type(output).__name__}, not a tensor")
    return output


def resolve_pool(pool: str, shape: Sequence[int]) -> str:
    """The pool `pool` is for an output of `shape` (AUTO chosen by its number of dimensions);
    a ValueError where the pool does not fit the shape."""
    shape_text = f"[{', '.join(map(str, shape))}]"
    if pool == AUTO:
        if len(shape) not in _AUTO:
            raise ValueError(f"output {shape_text} has no default pool; give one (e.g. ':flatten')")
        return _AUTO[len(shape)]
    ndim, form = _NEEDS.get(pool, (None, None))
    if ndim is not None and len(shape) != ndim:
        raise ValueError(f"pool '{pool}' needs a {form} output, got {shape_text}")
    if pool == "flatten" and len(shape) < 2:
        raise ValueError(f"pool 'flatten' needs a batch of outputs, got {shape_text}")
    return pool


def pool_output(output: torch.Tensor, pool: str, prefix: int = 1) -> torch.Tensor:
    """One vector per image, [B, dim], of a module's output under a resolved pool; `prefix`:
    the leading tokens `mean` leaves out."""
    if pool == "cls":
        return output[:, 0]
    if pool in ("mean", "cls+mean"):
        if output.shape[1] <= prefix:
            raise ValueError(
                f"pool '{pool}': output {list(output.shape)} has no token after the {prefix} "
                "prefix token(s)"
            )
        mean = output[:, prefix:].mean(dim=1)
        return mean if pool == "mean" else torch.cat([output[:, 0], mean], dim=1)
    if pool == "spatial_mean":
        return output.mean(dim=(2, 3))
    return output.flatten(1)


class LayerFeatures(nn.Module):
    """`model` whose output is its listed layers' pooled outputs, concatenated: [B, total dim].

    layers: `<module name>[:<pool>]` entries (see the module's docstring); backbone: the name
    errors give. After a forward pass, `info` lists {"module", "pool" (resolved), "dim"} per
    layer, in order.
    """

    def __init__(self, model: nn.Module, layers: Sequence[str], backbone: str = "?"):
        super().__init__()
        self.model, self.backbone = model, backbone
        try:
            self.layers = parse_layers(layers)
        except ValueError as err:
            raise ValueError(f"backbone {backbone}: {err}") from None
        target = weights_target(model)  # an hf/ backbone: the transformers model inside
        self.prefix = prefix_tokens(target)
        # Resolved now, so an unknown name fails at build time, not at the first batch.
        self._modules_by_name = {
            name: find_module(target, name, backbone) for name in dict(self.layers)
        }
        self.info: list[dict] = []

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        outputs: dict[str, list] = {name: [] for name in self._modules_by_name}
        handles = [
            module.register_forward_hook(lambda _m, _i, out, name=name: outputs[name].append(out))
            for name, module in self._modules_by_name.items()
        ]
        try:
            self.model(images)
        finally:  # hooks live for one pass only: the model is left as it was
            for handle in handles:
                handle.remove()
        features, info = [], []
        for name, pool in self.layers:
            output = self._output(name, outputs[name])
            try:
                resolved = resolve_pool(pool, output.shape)
                vector = pool_output(output, resolved, self.prefix)
            except ValueError as err:
                raise ValueError(f"backbone {self.backbone}: layer '{name}': {err}") from None
            features.append(vector)
            info.append({"module": name, "pool": resolved, "dim": int(vector.shape[1])})
        self.info = info
        return torch.cat(features, dim=1)

    def _output(self, name: str, calls: list) -> torch.Tensor:
        # A module run twice per pass (a shared activation) has no one output to take.
        if len(calls) != 1:
            ran = "did not run" if not calls else f"ran {len(calls)} times"
            raise ValueError(
                f"backbone {self.backbone}: layer '{name}' {ran} in the forward pass; list a "
                "module that runs once per image"
            )
        try:
            return first_tensor(calls[0])
        except ValueError as err:
            raise ValueError(f"backbone {self.backbone}: layer '{name}': {err}") from None
