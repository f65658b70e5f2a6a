"""Float64 values one (test row, proxy) pair at a time: the reference values that decide
between the candidates of engine/scores.py.

A pair's value never depends on the other pairs computed with it (its batch, its place in a
matrix), so duplicate proxies and duplicate test rows tie exactly.
"""

from __future__ import annotations

import torch

DIRECT = "donot_use_mm_for_euclid_dist"  # cdist pair by pair: no matrix-product rounding


def pair_dot(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Σ_k x_k·p_k over the last dimension, pair by pair, in place in `rows` (a fresh tensor)
    where shapes allow. On the CPU torch.linalg.vecdot's values (the elementwise product,
    summed one pair at a time); elsewhere summed by halving, since a GPU's sum splits the
    dimension by the shape of the whole batch: a pair's value would depend on its batch."""
    in_place = rows.shape == torch.broadcast_shapes(rows.shape, x.shape)
    product = rows.mul_(x) if in_place else rows * x
    if product.device.type == "cpu":
        return product.sum(dim=-1)
    return halving_sum(product)


def halving_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum over the last dimension as a fixed tree of elementwise additions (zero-padded to a
    power of two, then halves added): the same additions for an element whatever the shape."""
    width = 1 << max(t.shape[-1] - 1, 0).bit_length()
    t = torch.nn.functional.pad(t, (0, width - t.shape[-1]))
    while width > 1:
        width //= 2
        t = t[..., :width] + t[..., width:]
    return t[..., 0]
