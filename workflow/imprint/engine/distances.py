"""Exact Manhattan and Chebyshev nearest proxies at vectorised speed.

torch.cdist computes both with one scalar loop per pair, which dominates the aggfocus grid. Here
a float32 pass (a numba kernel on the CPU, torch.cdist in float32 on other devices) bounds every
distance within its own rounding error, and the reference arithmetic (torch.cdist in the compute
dtype, as before) decides among the few proxies that the bound cannot rule out. The neighbour
lists and distances are therefore exactly those of the reference on every input.

The bound. E = Σ|x_k - w_k| exactly, E' the same for the float32-rounded rows, |E' - E| ≤ a
with a = ‖x - x32‖₁ + ‖w - w32‖₁ (zero for float32 embeddings). A float32 sum of D rounded
non-negative terms, in any order, is within γ32·E' of E' (γ = D·u/(1 - D·u), u the unit
roundoff); the reference within γref·E of E. So the float32 value F and the reference value R
satisfy |F - R| ≤ r·(F + a) + 2a with r = (γ32 + γref)/(1 - γ32). Chebyshev takes a maximum:
one rounding each, u in place of γ. A proxy whose lower bound exceeds the m-th smallest upper
bound cannot be among the m nearest, whatever the ties.
"""

from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

P_NORMS = {"manhattan": 1.0, "chebyshev": math.inf}
# Bound on the float32 block of one chunk of test rows against every proxy (4 bytes each).
BLOCK_ELEMENTS = 2**25
# Bound on the candidate rows gathered at once for the exact re-rank (16 MiB of float64: a
# buffer that size is reused by the allocator, a larger one is paged in afresh every time).
RERANK_ELEMENTS = 2**21
# A test row whose candidates exceed this fraction of the proxies (exact ties everywhere,
# integer-valued embeddings) is computed against every proxy instead.
EXACT_ROW_FRACTION = 0.25
# The first candidates taken per row, 2·m + this; rows with more are counted over every proxy.
FIRST_EXTRA = 32
# 1% on top of the bound: covers the rounding of the bound's own float64 arithmetic.
BOUND_MARGIN = 1.01

# Columns per chunk of first_candidates' pre-selection (64: fastest here of 32-256).
CHUNK_COLUMNS = 64

# Kernel tiling: 4 test rows share each proxy value loaded; 64 proxies (128 KiB at 512-d)
# stay in L2 while every row of a task passes over them; a task is 32 test rows.
_TILE = 64
_TASK_ROWS = 32
# reassoc lets LLVM split a sum into vector lanes; nsz is moot after abs. No nnan/ninf:
# finiteness is checked, and an overflowing sum must stay inf rather than be assumed away.
_FASTMATH = {"reassoc", "nsz"}


def smallest_stable(block: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The m smallest values of every row and their columns, ties to the lower column.

    torch.topk leaves the order of equal values unspecified (and it differs between CPU and
    CUDA); duplicate proxies make such ties real. Rows whose m-th value is tied with a value
    topk left out are redone with a stable sort; every row is then ordered by (value, column).
    """
    d, i = torch.topk(block, m, dim=1, largest=False, sorted=True)
    boundary = d[:, -1:]
    ambiguous = (block == boundary).sum(dim=1) > (d == boundary).sum(dim=1)
    if bool(ambiguous.any()):
        sd, si = torch.sort(block[ambiguous], dim=1, stable=True)
        d[ambiguous], i[ambiguous] = sd[:, :m], si[:, :m]
    by_column = torch.argsort(i, dim=1)
    d, i = torch.gather(d, 1, by_column), torch.gather(i, 1, by_column)
    by_value = torch.argsort(d, dim=1, stable=True)
    return torch.gather(d, 1, by_value), torch.gather(i, 1, by_value)


def first_candidates(
    block: torch.Tensor, k: int, largest: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.topk(block, k, dim=1, largest, sorted=True) at a fraction of its cost on wide
    blocks: the same values; among equal values the columns may differ, as topk's own do.

    Columns in chunks of CHUNK_COLUMNS; topk then runs over the k chunks with the best maxima
    (minima) and the tail. It finds the same values in a block without NaN: the j-th best
    value v_j of a row lies in one of those chunks, or else k of them each hold a value at
    least as good as v_j. (A 559 × 60,000 block, k = 42: 14 ms instead of 25 ms.)
    """
    n, width = block.shape
    whole = width // CHUNK_COLUMNS
    if whole < 4 * k:
        return torch.topk(block, k, dim=1, largest=largest, sorted=True)
    chunks = block[:, : whole * CHUNK_COLUMNS].unflatten(1, (whole, CHUNK_COLUMNS))
    best = chunks.amax(dim=2) if largest else chunks.amin(dim=2)
    chosen = torch.topk(best, k, dim=1, largest=largest, sorted=False).indices
    offsets = torch.arange(CHUNK_COLUMNS, device=block.device)
    cols = (chosen[:, :, None] * CHUNK_COLUMNS + offsets).flatten(1)
    if whole * CHUNK_COLUMNS < width:
        tail = torch.arange(whole * CHUNK_COLUMNS, width, device=block.device)
        cols = torch.cat([cols, tail.expand(n, -1)], dim=1)
    values, at = torch.topk(torch.gather(block, 1, cols), k, dim=1, largest=largest, sorted=True)
    return values, torch.gather(cols, 1, at)


@functools.cache
def _kernels() -> dict:
    """(kernel, dtype of its output) per distance, built on first use: importing numba takes
    ~0.5 s, which imprinting jobs without Manhattan or Chebyshev should not pay. Chebyshev
    writes the bits of its float32 maxima."""
    import numba
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic
    def float_bits(typingctx, value):
        # A non-negative float32 orders as its bit pattern read as int32. LLVM vectorises an
        # integer max reduction but not numba's float max, so Chebyshev runs on the bits.
        if value != types.float32:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.IntType(32))

        return types.int32(types.float32), codegen

    @numba.njit(fastmath=_FASTMATH, inline="always")
    def add_abs(acc, a, b):
        return acc + abs(a - b)

    @numba.njit(inline="always")
    def max_abs_bits(acc, a, b):
        return max(acc, float_bits(abs(a - b)))

    return {
        "manhattan": (_tiled_kernel(numba, add_abs, np.float32(0.0)), np.float32),
        "chebyshev": (_tiled_kernel(numba, max_abs_bits, np.int32(0)), np.int32),
    }


def _tiled_kernel(numba, step, zero):
    """out[i, j] = fold of step over the features of x[i] and w[j], four rows at a time."""

    @numba.njit(fastmath=_FASTMATH, nogil=True)
    def kernel(x, w, out):
        n, d = x.shape
        four = n - n % 4
        for j0 in range(0, w.shape[0], _TILE):
            j1 = min(w.shape[0], j0 + _TILE)
            for i in range(0, four, 4):
                for j in range(j0, j1):
                    s0 = s1 = s2 = s3 = zero
                    for k in range(d):
                        b = w[j, k]
                        s0 = step(s0, x[i, k], b)
                        s1 = step(s1, x[i + 1, k], b)
                        s2 = step(s2, x[i + 2, k], b)
                        s3 = step(s3, x[i + 3, k], b)
                    out[i, j], out[i + 1, j], out[i + 2, j], out[i + 3, j] = s0, s1, s2, s3
            for i in range(four, n):
                for j in range(j0, j1):
                    s = zero
                    for k in range(d):
                        s = step(s, x[i, k], w[j, k])
                    out[i, j] = s

    return kernel


def approximate_distances(x32: torch.Tensor, w32: torch.Tensor, distance: str) -> torch.Tensor:
    """float32 distances [len(x32), len(w32)], each within the module's bound of the exact one."""
    if x32.device.type != "cpu":
        return torch.cdist(x32, w32, p=P_NORMS[distance])
    return _kernel_distances(x32, w32, distance)


def _kernel_distances(x32: torch.Tensor, w32: torch.Tensor, distance: str) -> torch.Tensor:
    kernel, out_dtype = _kernels()[distance]
    out = torch.empty(x32.shape[0], w32.shape[0], dtype=torch.float32)
    x, w = x32.detach().contiguous().numpy(), w32.detach().contiguous().numpy()
    o = out.numpy().view(out_dtype)
    starts = range(0, x.shape[0], _TASK_ROWS)
    threads = min(torch.get_num_threads(), len(starts))
    if threads <= 1:
        kernel(x, w, o)
        return out
    with ThreadPoolExecutor(threads) as pool:  # the kernel releases the GIL
        tasks = [
            pool.submit(kernel, x[s : s + _TASK_ROWS], w, o[s : s + _TASK_ROWS]) for s in starts
        ]
        for task in tasks:
            task.result()
    return out


def relative_bound(distance: str, dim: int, dtype: torch.dtype) -> float:
    """r of the module docstring, with BOUND_MARGIN: |F - R| ≤ r·(F + a) + 2a."""
    u32, uref = torch.finfo(torch.float32).eps / 2, torch.finfo(dtype).eps / 2
    if distance == "manhattan":
        u32, uref = dim * u32 / (1 - dim * u32), dim * uref / (1 - dim * uref)
    return BOUND_MARGIN * (u32 + uref) / (1 - u32)


def rounding_slack(x: torch.Tensor, x32: torch.Tensor, rounded: bool) -> torch.Tensor:
    """a of the bound per row: ‖x - x32‖₁ where x32 was rounded from x (the difference is
    exact), plus D·FLT_MIN for terms a CPU may flush to zero; float64."""
    a = torch.full((x.shape[0],), x.shape[1] * torch.finfo(torch.float32).tiny, device=x.device)
    if rounded:
        a = a.to(x.dtype) + (x - x32.to(x.dtype)).abs().sum(dim=1)
    return BOUND_MARGIN * a.to(torch.float64)


def nearest_lp(
    x: torch.Tensor,
    w: torch.Tensor,
    expand: torch.Tensor | None,
    distance: str,
    m: int,
    exact32: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The m nearest proxies (Manhattan or Chebyshev) of every row of x, as the reference finds them.

    x [n, D] and the distinct proxies w are in the compute dtype (float32 or float64); expand
    maps every proxy to its row of w (None: w holds every proxy); exact32 holds float32 tensors
    equal to x and w (the embeddings before the cast), which spares rounding them here.
    Returns (distances [n, m], proxy indices [n, m]) ordered by (distance, proxy index):
    torch.cdist's values in x.dtype.
    """
    n_proxies = w.shape[0] if expand is None else expand.shape[0]
    dists = torch.empty(x.shape[0], m, dtype=x.dtype, device=x.device)
    idx = torch.empty(x.shape[0], m, dtype=torch.int64, device=x.device)
    rounded = exact32 is None
    x32, w32 = exact32 or (x.to(torch.float32), w.to(torch.float32))
    r = relative_bound(distance, x.shape[1], x.dtype)
    # Otherwise the reference throughout: every row would go to it (m alone is too many
    # candidates), values beyond float32, or D in the millions.
    bounded = m <= EXACT_ROW_FRACTION * n_proxies and r < 0.5
    bounded = bounded and x.shape[0] > 0 and _within_float32(x32, w32)
    if bounded:
        slack = rounding_slack(x, x32, rounded) + rounding_slack(w, w32, rounded).max()
    step = max(1, BLOCK_ELEMENTS // n_proxies)
    for start in range(0, x.shape[0], step):
        rows = slice(start, min(start + step, x.shape[0]))
        if not bounded:
            dists[rows], idx[rows] = _exact_rows(x[rows], w, expand, distance, m)
            continue
        approx = approximate_distances(x32[rows], w32, distance)
        if expand is not None:
            approx = approx[:, expand]
        dists[rows], idx[rows] = _nearest_in_block(
            x[rows], w, expand, approx, slack[rows], r, distance, m
        )
    return dists, idx


def _within_float32(x32: torch.Tensor, w32: torch.Tensor) -> bool:
    """Every float32 distance finite: finite inputs whose sums cannot overflow (a NaN fails)."""
    reach = float(x32.abs().amax()) + float(w32.abs().amax())
    return reach <= torch.finfo(torch.float32).max / (4 * x32.shape[1])


def candidate_threshold(kth: torch.Tensor, slack: torch.Tensor, r: float) -> torch.Tensor:
    """float32 T per row: every proxy that can be among the m nearest has F ≤ T.

    kth is each row's m-th smallest F. A proxy is a candidate when its lower bound
    F·(1 - r) - r·a - 2a reaches the m-th smallest upper bound F_m + r·(F_m + a) + 2a.
    Evaluated in float64 whatever the compute dtype (BOUND_MARGIN covers that arithmetic),
    then rounded up to float32: a larger candidate set is still safe.
    """
    threshold = (kth.to(torch.float64) * (1 + r) + slack * (2 * r + 4)) / (1 - r)
    threshold = threshold.to(torch.float32)
    return torch.nextafter(threshold, torch.full_like(threshold, math.inf))


def _nearest_in_block(x, w, expand, approx, slack, r, distance, m):
    """Exact top-m of one chunk: candidates from the float32 block, exact rows where too many."""
    # One topk gives the m-th value and, for most rows, every candidate.
    first = min(approx.shape[1], 2 * m + FIRST_EXTRA)
    values, cand = first_candidates(approx, first, largest=False)
    threshold = candidate_threshold(values[:, m - 1], slack, r)
    counts = (values <= threshold[:, None]).sum(dim=1)
    more = counts == first  # candidates may go on past the first ones
    if first < approx.shape[1] and bool(more.any()):
        counts[more] = (approx[more] <= threshold[more, None]).sum(dim=1)
    exact = counts > EXACT_ROW_FRACTION * approx.shape[1]
    dists = torch.empty(x.shape[0], m, dtype=x.dtype, device=x.device)
    idx = torch.empty(x.shape[0], m, dtype=torch.int64, device=x.device)
    if bool(exact.any()):
        dists[exact], idx[exact] = _exact_rows(x[exact], w, expand, distance, m)
    rest = torch.nonzero(~exact).flatten()
    rest = rest[torch.argsort(counts[rest])]  # similar candidate counts share a batch
    for batch in rerank_batches(counts[rest].tolist(), RERANK_ELEMENTS // x.shape[1]):
        rows = rest[batch]
        k = int(counts[rows].max())
        # Each row's candidates lead its k smallest; a few more than its own are harmless.
        if k <= first:
            some = cand[rows, :k]
        else:
            some = torch.topk(approx[rows], k, dim=1, largest=False, sorted=False).indices
        some = torch.sort(some, dim=1).values  # by proxy index: ties go to the lower one
        gathered = w[some if expand is None else expand[some]]
        exact_d = torch.cdist(x[rows][:, None, :], gathered, p=P_NORMS[distance])[:, 0, :]
        d, col = smallest_stable(exact_d.clamp_min_(0.0), m)
        dists[rows], idx[rows] = d, torch.gather(some, 1, col)
    return dists, idx


def rerank_batches(sizes: list[int], per_batch: int):
    """Slices of ascending `sizes` whose count × largest size stays within per_batch."""
    start = 0
    for end in range(1, len(sizes) + 1):
        if end == len(sizes) or (end + 1 - start) * sizes[end] > per_batch:
            yield slice(start, end)
            start = end


def _exact_rows(x, w, expand, distance, m):
    """The reference: every proxy's distance by torch.cdist, the m smallest by (value, index)."""
    block = torch.cdist(x, w, p=P_NORMS[distance]).clamp_min_(0.0)
    if expand is not None:
        block = block[:, expand]
    return smallest_stable(block, m)
