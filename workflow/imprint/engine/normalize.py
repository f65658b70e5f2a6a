"""NORMpre / NORMpost / NORMinf: L2 and the order-dependent quantile normalisation."""

from __future__ import annotations

import torch

from imprint.engine.vocabulary import NORM_INF, NORM_POST, NORM_PRE  # noqa: F401  (re-exported)

# Rows per float64 block of the L2 normalisation: 2^22 elements, 32 MiB.
L2_BLOCK_ELEMENTS = 2**22


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Scale each row to unit Euclidean length (a zero row stays zero).

    float32 rows are normalised in float64 and rounded once: a float32 norm depends on the
    summation order, which differs between devices, and a last-bit difference here reaches
    every later distance and k-means. Blocks bound the float64 copy.
    """
    if x.dtype == torch.float64 or x.dim() != 2:
        return torch.nn.functional.normalize(x, p=2, dim=-1).to(x.dtype)
    out = torch.empty_like(x)
    rows = max(1, L2_BLOCK_ELEMENTS // max(x.shape[1], 1))
    for start in range(0, x.shape[0], rows):
        block = x[start : start + rows].to(torch.float64)
        out[start : start + rows] = torch.nn.functional.normalize(block, p=2, dim=-1)
    return out


def apply_norm(x: torch.Tensor, norm: str) -> torch.Tensor:
    """NORMpre / NORMinf: 'none' or 'l2' on the rows of x."""
    if norm == "none":
        return x
    if norm == "l2":
        return l2_normalize(x)
    raise ValueError(f"unknown normalisation '{norm}'; allowed: none, l2")


def quantile_grid(n: int, device=None) -> torch.Tensor:
    """The n quantile levels (i + 0.5) / n, i = 0..n-1: exactly n points for every n."""
    return (torch.arange(n, dtype=torch.float64, device=device) + 0.5) / n


def _weighted_linear_quantiles(
    values: torch.Tensor, counts: torch.Tensor, q: torch.Tensor
) -> torch.Tensor:
    """Quantiles with linear interpolation (torch.quantile's default) of a multiset.

    `values` are sorted ascending, `counts[i]` is how often values[i] occurs. Equal to
    torch.quantile(repeat_interleave(values, counts), q) without materialising the repeats.
    """
    total = int(counts.sum())
    cum = torch.cumsum(counts, 0)  # cum[i] = number of elements with index <= i
    h = q * (total - 1)
    lo = torch.floor(h).to(torch.int64)
    hi = torch.clamp(lo + 1, max=total - 1)
    # Sorted position p falls into the first multiset entry whose cumulative count exceeds p.
    v_lo = values[torch.searchsorted(cum, lo, right=True)]
    v_hi = values[torch.searchsorted(cum, hi, right=True)]
    return v_lo + (h - lo) * (v_hi - v_lo)


def quantile_normalize_sequential(proxies_per_class: list[torch.Tensor]) -> list[torch.Tensor]:
    """NORMpost 'quantile', class by class in task order, as in the paper's reference.

    Each new class's proxies are mapped, row by row, onto the value distribution of every
    proxy imprinted before it: a row's i-th smallest value is replaced by the reference
    pool's quantile at level (i + 0.5) / D (linear interpolation), D the embedding size.
    The first class has no reference and stays raw, so results depend on class order.

    Differences from the reference, on purpose: the pool is never subsampled (the reference
    silently thins large pools), the grid has exactly D points for every D (the reference's
    float grid can have D + 1 and fail), and ties inside a row keep their order (stable sort).
    The pool is kept as a multiset: every normalised row is a permutation of the same D
    quantile values, so it adds those D values with its row count instead of k·D raw values.
    """
    if not proxies_per_class:
        return []
    out = [proxies_per_class[0]]
    first = proxies_per_class[0].reshape(-1).to(torch.float64)
    pool_values, pool_counts = first, torch.ones_like(first, dtype=torch.int64)
    for proxies in proxies_per_class[1:]:
        d = proxies.shape[1]
        order = torch.argsort(pool_values, stable=True)
        pool_values, pool_counts = pool_values[order], pool_counts[order]
        target = _weighted_linear_quantiles(
            pool_values, pool_counts, quantile_grid(d, device=proxies.device)
        ).to(proxies.dtype)
        ranks = torch.argsort(proxies, dim=1, stable=True)
        mapped = torch.empty_like(proxies)
        mapped.scatter_(1, ranks, target.expand(proxies.shape[0], d))
        new_values = target.to(torch.float64)
        new_counts = torch.full((d,), proxies.shape[0], dtype=torch.int64, device=target.device)
        out.append(mapped)
        pool_values = torch.cat([pool_values, new_values])
        pool_counts = torch.cat([pool_counts, new_counts])
    return out


def apply_norm_post(proxies_per_class: list[torch.Tensor], norm: str) -> list[torch.Tensor]:
    """NORMpost on the per-class proxy lists (classes in task order)."""
    if norm == "none":
        return proxies_per_class
    if norm == "l2":
        return [l2_normalize(p) for p in proxies_per_class]
    if norm == "quantile":
        return quantile_normalize_sequential(proxies_per_class)
    raise ValueError(f"unknown NORMpost '{norm}'; allowed: {', '.join(NORM_POST)}")
