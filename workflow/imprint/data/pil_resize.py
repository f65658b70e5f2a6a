"""Pillow's image resize on uint8 tensor batches, bit for bit, on any torch device.

The paper's preprocessing resizes one PIL image at a time (torchvision's weights transforms on
PIL input). Pillow resizes 8-bit images separably in fixed point: per output pixel a filter
window whose weights are normalised, scaled by 2^22 and rounded to integers; each pass sums
integer products, adds 2^21, shifts right by 22 and clips to 0..255, and the intermediate
image between the two passes is 8-bit again. torch's own antialiased resize rounds
differently (up to 1 grey level apart for bilinear, many for bicubic), so this module rebuilds
Pillow's integer weights as dense matrices and runs both passes as float64 matrix products:
every product and partial sum is an integer below 2^31, so float64 holds them exactly, on a
GPU too, and the result equals Pillow's.

Which pass runs first differs between Pillow versions (13 runs the vertical pass first when the
height shrinks by more than twice as many pixels as the width, older ones never do), so the
order is read off the installed Pillow on a noise image; extraction also checks the whole
batched transform against the PIL one on real images before using it.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

__all__ = ["FILTERS", "installed_pillow_order", "pil_weights", "resize_like_pil"]

PRECISION_BITS = 22  # Pillow's fixed point for 8-bit images: 32 - 8 - 2 bits


def _bilinear(x: float) -> float:
    x = abs(x)
    return 1.0 - x if x < 1.0 else 0.0


def _bicubic(x: float) -> float:
    a = -0.5  # Pillow's (and Keys') bicubic convolution parameter
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


# name -> (filter, support in input pixels at scale 1)
FILTERS = {"bilinear": (_bilinear, 1.0), "bicubic": (_bicubic, 2.0)}


def pil_weights(in_size: int, out_size: int, interpolation: str) -> np.ndarray:
    """Pillow's integer resampling weights for one axis, as a dense [out_size, in_size] array.

    Row i holds the fixed-point weights (normalised to sum 1, times 2^22, rounded half away
    from zero) of the input pixels that output pixel i reads; the rest are 0. Downscaling
    widens the window by the scale factor, which is what makes the resize antialiased.
    """
    if interpolation not in FILTERS:
        raise ValueError(f"interpolation must be one of {sorted(FILTERS)}, got {interpolation!r}")
    kernel, support = FILTERS[interpolation]
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support *= filterscale
    inverse = 1.0 / filterscale  # multiplied, not divided by: Pillow's rounding
    weights = np.zeros((out_size, in_size))
    for i in range(out_size):
        center = (i + 0.5) * scale
        # C's (int) truncates towards zero; the clamps follow it, as in Pillow.
        lo = max(math.trunc(center - support + 0.5), 0)
        hi = min(math.trunc(center + support + 0.5), in_size)
        w = [kernel((x - center + 0.5) * inverse) for x in range(lo, hi)]
        total = 0.0
        for v in w:  # summed in order, as Pillow does
            total += v
        if total != 0.0:
            w = [v / total for v in w]
        one = float(1 << PRECISION_BITS)
        weights[i, lo:hi] = [math.trunc(v * one + (0.5 if v >= 0 else -0.5)) for v in w]
    return weights


@functools.lru_cache(maxsize=64)
def installed_pillow_order(
    in_hw: tuple[int, int], out_hw: tuple[int, int], interpolation: str
) -> bool:
    """Whether the installed Pillow runs the vertical pass first for this resize.

    Pillow 13 does when the height shrinks by more than twice as many pixels as the width;
    older versions never do. Rather than trusting a version number, resize a seeded noise
    image (which tells the orders apart) with Pillow and see which order reproduces it.
    """
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, size=in_hw, dtype=np.uint8)
    mode = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
    expected = np.asarray(Image.fromarray(noise).resize(out_hw[::-1], mode[interpolation]))
    for vertical_first in (False, True):
        got = _resize(torch.from_numpy(noise), out_hw, interpolation, vertical_first)
        if np.array_equal(got.numpy(), expected):
            return vertical_first
    raise RuntimeError(
        f"the installed Pillow resizes {in_hw} -> {out_hw} ({interpolation}) in a way neither "
        "pass order reproduces"
    )


def _pass(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """One fixed-point pass along the last axis: floor((x @ W^T + 2^21) / 2^22), clipped."""
    acc = torch.matmul(x, weights.T) + float(1 << (PRECISION_BITS - 1))
    return torch.floor(acc / float(1 << PRECISION_BITS)).clamp_(0, 255)


def resize_like_pil(
    images: torch.Tensor,
    size: tuple[int, int],
    interpolation: str,
    vertical_first: bool | None = None,
) -> torch.Tensor:
    """Resize uint8 images [..., H, W] to `size` = (h, w) exactly as PIL's Image.resize((w, h)).

    Returns uint8 on the input's device. `vertical_first` None takes the installed Pillow's
    pass order (installed_pillow_order).
    """
    if images.dtype != torch.uint8:
        raise ValueError(f"resize_like_pil takes uint8 images, got {images.dtype}")
    in_hw = (int(images.shape[-2]), int(images.shape[-1]))
    out_hw = (int(size[0]), int(size[1]))
    if vertical_first is None:
        vertical_first = installed_pillow_order(in_hw, out_hw, interpolation)
    return _resize(images, out_hw, interpolation, vertical_first)


def _resize(
    images: torch.Tensor, out_hw: tuple[int, int], interpolation: str, vertical_first: bool
) -> torch.Tensor:
    h, w = out_hw
    x = images.to(torch.float64)

    def horizontal(x: torch.Tensor) -> torch.Tensor:
        if w == x.shape[-1]:
            return x
        weights = torch.as_tensor(pil_weights(x.shape[-1], w, interpolation), device=x.device)
        return _pass(x, weights)

    def vertical(x: torch.Tensor) -> torch.Tensor:
        if h == x.shape[-2]:
            return x
        weights = torch.as_tensor(pil_weights(x.shape[-2], h, interpolation), device=x.device)
        return _pass(x.transpose(-1, -2), weights).transpose(-1, -2)

    x = horizontal(vertical(x)) if vertical_first else vertical(horizontal(x))
    return x.to(torch.uint8)
