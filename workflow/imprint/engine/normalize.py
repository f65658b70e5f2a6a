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


def _pool_quantiles(
    first: torch.Tensor, values: torch.Tensor, counts: torch.Tensor, q: torch.Tensor
) -> torch.Tensor:
    """Quantiles with linear interpolation (torch.quantile's default) of a pool held in two
    parts: `first`, sorted values that occur once each, and a multiset (`values` sorted
    ascending, `counts[j]` how often values[j] occurs). Equal to torch.quantile of all of
    them, repeats materialised, without materialising or merging anything.
    """
    total = first.shape[0] + int(counts.sum())
    # In sorted order, multiset entry j occupies the positions [start_j, end_j).
    start = torch.searchsorted(first, values, right=True) + torch.cumsum(counts, 0) - counts
    end = start + counts

    through = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])  # before entry j

    def at(position: torch.Tensor) -> torch.Tensor:
        if values.numel() == 0:
            return first[position]
        j = torch.searchsorted(end, position, right=True)  # the first entry ending after it
        jc = j.clamp(max=values.shape[0] - 1)
        inside = (j < values.shape[0]) & (start[jc] <= position)
        # Outside every entry: a value of `first`, after the multiset elements before it.
        from_first = first[(position - through[j]).clamp(0, first.shape[0] - 1)]
        return torch.where(inside, values[jc], from_first)

    h = q * (total - 1)
    lo = torch.floor(h).to(torch.int64)
    hi = torch.clamp(lo + 1, max=total - 1)
    v_lo, v_hi = at(lo), at(hi)
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
    # The pool: the first class's values, sorted once, and the normalised rows since, a
    # multiset of D values per class (each row is a permutation of its class's target).
    first = torch.sort(proxies_per_class[0].reshape(-1).to(torch.float64)).values
    values = torch.empty(0, dtype=torch.float64, device=first.device)
    counts = torch.empty(0, dtype=torch.int64, device=first.device)
    for proxies in proxies_per_class[1:]:
        d = proxies.shape[1]
        q = quantile_grid(d, device=proxies.device)
        target = _pool_quantiles(first, values, counts, q).to(proxies.dtype)
        ranks = torch.argsort(proxies, dim=1, stable=True)
        mapped = torch.empty_like(proxies)
        mapped.scatter_(1, ranks, target.expand(proxies.shape[0], d))
        out.append(mapped)
        values = torch.cat([values, target.to(torch.float64)])
        counts = torch.cat([counts, torch.full((d,), proxies.shape[0], device=counts.device)])
        order = torch.argsort(values, stable=True)  # a few thousand values
        values, counts = values[order], counts[order]
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
