"""Inner-product, cosine and Euclidean AGGs of one proxy set from one matrix product.

A family is one set of test rows X (as stored, NORMinf none) and one set of base proxies B
(after GEN, before NORMpost l2), with the views derived from them by positive row scalings:
the L2-normalised test rows (NORMinf l2) and the L2-normalised proxies (NORMpost l2). Every
score the three AGG distances need is G = X·Bᵀ scaled by row and column factors plus row and
column norms: an inner product is β_j·G_ij, a cosine 1 - G_ij/(‖x_i‖‖b_j‖), a squared Euclidean
distance ‖t_i‖² + ‖p_j‖² - 2·α_i·β_j·G_ij. So the family costs one product, computed in blocks
of test rows, whatever the number of (view, NORMinf, AGG, m, weighting) configurations reading it.

Exactness. The product runs in float32 (float64 where inputs are float64, out of float32's
range, or where the device may lower float32 products to TF32/bfloat16), and it only chooses
candidates: each score derived from it is within a proven bound E of the reference value
(below), so a proxy whose approximate score is more than 2E from the m-th best cannot be
among the m best. The reference values of the few candidates are then computed one pair at a
time in float64 and decide, ties going to the lower proxy (nearest lists) or the lower class
(max). The references, for stored rows t (test view) and p (proxy view) in float64:

    inner product  Σ t_k·p_k                     (max inner product reads NORMinf none)
    cosine         1 - (Σ x̂_k·b_k)/‖b‖, x̂ = x/‖x‖  (directions: NORMinf and NORMpost l2 do
                   not change them, so every view of a family shares one cosine list)
    euclidean      √(Σ (t_k - p_k)²)

each computed pair by pair (engine/pair_kernels.py: torch.linalg.vecdot's elementwise
product summed, by a fixed halving tree on a GPU; torch.cdist without its matrix-product
path), so a pair's value never depends on where the pair sits in a matrix: duplicate proxies
and duplicate test rows tie exactly. (Norms are clamped below at 1e-12, as F.normalize does.)

The bound, per row i, in units of the score that is ranked (largest first): a floating-point
dot product of D terms is within γ_D·Σ|x_k b_k| ≤ γ_D·‖x‖‖b‖ of the exact one in any order of
summation (γ_D = D·u/(1 - D·u), u the unit roundoff); the views add their rounding (≤ 2u each,
relative), the score's own float arithmetic a few u, and the float64 reference its γ_D. Terms a
device may flush to zero add at most D times the smallest normal number per product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from imprint.engine.distances import first_candidates, rerank_batches, smallest_stable
from imprint.engine.pair_kernels import DIRECT, pair_dot

# Bound on the elements of one block of test rows × every proxy (float32: 4 bytes each).
BLOCK_ELEMENTS = 2**25
# Bound on the float64 elements of candidate rows gathered at once for the reference values.
RERANK_ELEMENTS = 2**21
# A row whose candidates exceed this fraction of the proxies is computed against every proxy.
EXACT_ROW_FRACTION = 0.25
# Candidates taken with the first sort: 2·m + this; rows with more are counted over the row.
FIRST_EXTRA = 32
# A view of at most this many elements (8 MiB as float64) keeps a float64 copy to gather from.
SMALL_VIEW_ELEMENTS = 2**20
# On top of every bound: covers the float64 arithmetic that evaluates the bound itself.
BOUND_MARGIN = 1.05
SERVED = {("inner_product", "max"), ("cosine", "nearest"), ("euclidean", "nearest")}
NORM_EPS = 1e-12  # torch.nn.functional.normalize's: a zero row has no direction


@dataclass(frozen=True)
class Request:
    """One AGG reading a family: `max` (class of the best inner product; view only) or
    `nearest` (the `depth` nearest proxies by `distance`, for the test rows of `norm_inf`)."""

    agg: str
    distance: str
    view: str = "base"  # proxies: "base" or the name of another view
    norm_inf: str = "none"
    depth: int = 1


def row_norms(tests: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """float64 ‖x_i‖ of every test variant's rows."""
    return {v: torch.linalg.vector_norm(t.to(torch.float64), dim=1) for v, t in tests.items()}


@dataclass
class SharedTests:
    """What every family of one set of test rows shares, kept by the caller (one per task):
    the float64 row norms of each variant, and the float64 unit rows that cosine references
    read, made on first use (a family would otherwise redo both: 10 ms per family here)."""

    norms: dict[str, torch.Tensor]
    unit: torch.Tensor | None = None

    @classmethod
    def of(cls, tests: dict[str, torch.Tensor]) -> SharedTests:
        return cls(row_norms(tests))


def family_scores(
    tests: dict[str, torch.Tensor],
    views: dict[str, torch.Tensor],
    class_sizes: list[int],
    requests: list[Request],
    shared: SharedTests | None = None,
) -> dict[Request, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
    """Every request of one family: {request: predictions [n]} for max, {request: (distances
    [n, m] float64, proxy indices [n, m])} for nearest, nearest first, ties to the lower proxy.

    tests["none"] are the test rows as stored; tests["l2"], where present, their L2
    normalisation (imprint.engine.normalize.l2_normalize). views["base"] are the proxies,
    class by class (class_sizes rows each); every other view holds the same rows, each scaled
    by a positive factor and rounded (an L2 normalisation, or two), which the bound covers: a
    view that is not such a scaling of the base gives wrong answers. A view or test variant
    a request names must be given. `shared`: SharedTests.of(tests), where the caller keeps it
    for many families of the same test rows.
    """
    family = _Family.build(tests, views, class_sizes, shared)
    requests = list(dict.fromkeys(requests))  # configurations that read the same answer
    out: dict = {}
    for request in requests:
        if (request.distance, request.agg) not in SERVED:
            raise ValueError(f"family_scores cannot serve {request}")
        if request.agg == "nearest":
            m = min(request.depth, family.n_proxies)
            out[request] = (
                torch.empty(family.n_test, m, dtype=torch.float64, device=family.device),
                torch.empty(family.n_test, m, dtype=torch.int64, device=family.device),
            )
        else:
            out[request] = torch.empty(family.n_test, dtype=torch.int64, device=family.device)
    if family.n_test == 0 or family.n_proxies == 0:
        return out
    step = max(1, BLOCK_ELEMENTS // family.n_proxies)
    for start in range(0, family.n_test, step):
        rows = slice(start, min(start + step, family.n_test))
        family.score_block(rows, requests, out)
    return out


def approximate_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float32 where the inputs (float32, or float64 rounded to float32: the bound covers the
    rounding) and their products stay far inside float32's range and the device computes
    float32 products in float32 proper; float64 otherwise (the bounds then use its roundoff)."""
    if any(t.dtype not in (torch.float32, torch.float64) for t in tensors):
        return torch.float64
    device = tensors[0].device
    if device.type == "cuda" and torch.backends.cuda.matmul.allow_tf32:
        return torch.float64
    if device.type == "cpu" and torch.get_float32_matmul_precision() != "highest":
        return torch.float64
    dim = tensors[0].shape[1]
    if dim * torch.finfo(torch.float32).eps > 0.01:  # γ_D would be no bound (D in the 100,000s)
        return torch.float64
    # Largest possible row norm R: products reach R², Euclidean scores R³ (‖x‖·‖b‖²).
    norm = max(float(t.abs().amax()) if t.numel() else 0.0 for t in tensors) * math.sqrt(dim)
    tiny = torch.finfo(torch.float32).tiny
    if not math.isfinite(norm) or 16 * max(norm**2, norm**3) > torch.finfo(torch.float32).max:
        return torch.float64
    if any(t.dtype == torch.float64 and bool(((t != 0) & (t.abs() < tiny)).any()) for t in tensors):
        return torch.float64  # values float32 cannot hold at all
    return torch.float32


def _gamma(dim: int, dtype: torch.dtype) -> float:
    u = torch.finfo(dtype).eps / 2
    return dim * u / (1 - dim * u)


@dataclass
class _Family:
    tests: dict[str, torch.Tensor]
    views: dict[str, torch.Tensor]
    starts: list[int]  # first proxy of each class, and the end
    dtype: torch.dtype  # of the approximate product
    test_norm: torch.Tensor  # float64 ‖x_i‖ of the stored test rows
    test_scale: dict[str, torch.Tensor]  # float64 α_i: tests[v] row i = α_i·x_i (rounded)
    view_scale: dict[str, torch.Tensor]  # float64 β_j: view row j = β_j·b_j (rounded);
    # "unit" (no stored view): β_j = 1/‖b_j‖, the scale of the base's directions
    view_sq_norm: dict[str, torch.Tensor]  # float64 ‖p_j‖² of each view's stored rows
    base_norm: torch.Tensor  # float64 ‖b_j‖
    shared: SharedTests  # float64 ‖t_i‖ of each test variant (norms) and the unit rows
    # Two blocks reused for every block of test rows: the product and one derived score.
    # Fresh 128 MiB blocks would come from the OS each time and page-fault on first touch,
    # which cost more than the product itself (18 blocks of 559 × 60,000 here: 6.8 s against
    # 5.4 s for the products into one reused block; a scaled copy 1.27 s against 0.17 s).
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def build(cls, tests, views, class_sizes, shared=None) -> _Family:
        base = views["base"]
        dtype = approximate_dtype(tests["none"], base)
        b64 = torch.linalg.vector_norm(base.to(torch.float64), dim=1)
        scale = {"base": torch.ones_like(b64), "unit": 1.0 / b64.clamp_min(NORM_EPS)}
        for name, v in views.items():
            if name != "base":  # ‖v_j‖/‖b_j‖; a zero row stays zero under any scaling
                v64 = torch.linalg.vector_norm(v.to(torch.float64), dim=1)
                scale[name] = torch.where(b64 > 0, v64 / b64.clamp_min(NORM_EPS), 1.0)
        sq = {
            name: (b64 if name == "base" else torch.linalg.vector_norm(v.to(torch.float64), dim=1))
            ** 2
            for name, v in views.items()
        }
        starts = [0]
        for size in class_sizes:
            starts.append(starts[-1] + int(size))
        if starts[-1] != base.shape[0]:
            raise ValueError(f"class sizes {class_sizes} do not add up to {base.shape[0]} proxies")
        shared = SharedTests.of(tests) if shared is None else shared
        norms = shared.norms
        nx = norms["none"]
        alpha = {v: torch.where(nx > 0, n / nx.clamp_min(NORM_EPS), 1.0) for v, n in norms.items()}
        return cls(tests, views, starts, dtype, nx, alpha, scale, sq, b64, shared)

    @property
    def n_test(self) -> int:
        return self.tests["none"].shape[0]

    @property
    def n_proxies(self) -> int:
        return self.views["base"].shape[0]

    @property
    def device(self) -> torch.device:
        return self.tests["none"].device

    def score_block(self, rows: slice, requests: list[Request], out: dict) -> None:
        """Every request's answer for one block of test rows, from one product."""
        x = self.tests["none"][rows].to(self.dtype)
        g = torch.matmul(x, self._proxies_t(), out=self._buffer("product", x.shape[0]))
        by_score: dict[tuple, list] = {}
        for request in requests:
            score, bound = self._score(request, rows)
            by_score.setdefault(score, []).append((request, bound))
        # The product is the score of the base view as it is; the last other score is made
        # from it in place: at most one block besides the product.
        names = sorted(by_score, key=lambda k: k != ("scaled", "base"))
        for name in names:
            block = self._score_block(name, g, rows, in_place=name == names[-1])
            nearest = [(r, b) for r, b in by_score[name] if r.agg == "nearest"]
            first = min(
                block.shape[1], 2 * max((r.depth for r, _ in nearest), default=0) + FIRST_EXTRA
            )
            top = first_candidates(block, first) if nearest else None
            for request, bound in by_score[name]:
                if request.agg == "max":
                    out[request][rows] = self._max(block, bound, rows, request.view)
                else:
                    dist, idx = out[request]
                    dist[rows], idx[rows] = self._nearest(block, top, bound, rows, request)

    # --- scores: what is ranked, largest first, and its bound ------------------------------

    def _proxies_t(self) -> torch.Tensor:
        if "proxies_t" not in self.buffers:
            self.buffers["proxies_t"] = self.views["base"].to(self.dtype).T
        return self.buffers["proxies_t"]

    def _buffer(self, name: str, n: int) -> torch.Tensor:
        """The first n rows of a reused [rows per block, proxies] block of the product dtype."""
        buf = self.buffers.get(name)
        if buf is None or buf.shape[0] < n:
            buf = torch.empty(n, self.n_proxies, dtype=self.dtype, device=self.device)
            self.buffers[name] = buf
        return buf[:n]

    def _score(self, request: Request, rows: slice) -> tuple[tuple, torch.Tensor]:
        """(the score's name, the per-row bound E on |score - reference| in score units)."""
        d = self.views["base"].shape[1]
        u = torch.finfo(self.dtype).eps / 2
        # u terms: the test view's rounding (2u), the proxy view's (3u), the score's arithmetic
        # (3u), float64 inputs rounded for the product (2u), spare; float64 reference: 3γ.
        rel = BOUND_MARGIN * (_gamma(d, self.dtype) + 16 * u + 3 * _gamma(d + 4, torch.float64))
        tiny = 8 * d * torch.finfo(self.dtype).tiny
        nx = self.test_norm[rows]
        if request.distance == "cosine":
            # score G/‖b‖: cosine distance = 1 - score/‖x‖.
            return self._scaled("unit", rel * nx + tiny * self._reach("unit"), nx)
        view = request.view
        scaled_reach = float((self.view_scale[view] * self.base_norm).max())
        dot_bound = rel * nx * scaled_reach + tiny * self._reach(view)
        if request.distance == "inner_product":
            return self._scaled(view, dot_bound, nx)
        # euclidean: d² = ‖t‖² - 2α·(β·G - h·‖p‖²), h = 1/(2α); score = β·G - h·‖p‖².
        h = self._half_inverse_alpha(request.norm_inf, rows)
        sq = self.view_sq_norm[view]
        nt = self.shared.norms[request.norm_inf][rows]
        reach_p = float(sq.max().sqrt())
        bound = (
            dot_bound
            + 4 * u * (h * float(sq.max()) + nx * scaled_reach)
            + BOUND_MARGIN * 2 * _gamma(d + 4, torch.float64) * (nt + reach_p) ** 2 * h
        )
        spread = float(sq.max() - sq.min())
        if bool((h * spread <= 0.25 * bound).all()):
            # ‖p_j‖² all but constant (unit proxies): the inner product's score ranks alike.
            return self._scaled(view, bound + h * spread, nx)
        return ("euclidean", view, request.norm_inf), bound

    def _scaled(self, view: str, bound: torch.Tensor, nx: torch.Tensor) -> tuple:
        """("scaled", view) and its bound, or the score of the base or of its directions
        where their scales differ from the view's by rounding only (an L2-normalised view of
        unit rows; an L2 normalisation of an L2 normalisation), with what that adds."""
        for other in ("base", "unit"):
            if other == view:
                break
            gap = (self.view_scale[view] - self.view_scale[other]).abs() * self.base_norm
            offset = float(gap.max())
            if bool((nx * offset <= 0.25 * bound).all()):
                return ("scaled", other), bound + nx * offset
        return ("scaled", view), bound

    def _reach(self, view: str) -> float:
        return 1.0 + float(self.view_scale[view].max())

    def _half_inverse_alpha(self, norm_inf: str, rows: slice) -> torch.Tensor:
        return 0.5 / self.test_scale[norm_inf][rows].clamp_min(NORM_EPS)  # h = 1/(2α)

    def _score_block(self, name: tuple, g: torch.Tensor, rows: slice, in_place: bool):
        """The named score of one block from its product g (overwritten when in_place)."""
        view = name[1]
        if name[0] == "scaled" and view == "base":  # β = 1: the product itself
            return g
        out = g if in_place else self._buffer("score", g.shape[0])
        if view != "base":
            torch.mul(g, self.view_scale[view].to(g.dtype), out=out)
            g = out
        if name[0] == "euclidean":
            h = self._half_inverse_alpha(name[2], rows).to(g.dtype)
            sq = self.view_sq_norm[view].to(g.dtype)
            torch.addr(g, h, sq, alpha=-1, out=out)  # - h_i·‖p_j‖²: one pass
        return out

    # --- nearest: candidates from the score, reference values decide ------------------------

    def _nearest(self, score, top, bound: torch.Tensor, rows: slice, request: Request):
        """The request's nearest proxies of one block of test rows; `top` the score's largest
        values and their proxies, sorted, at least 2·m + FIRST_EXTRA of them (or all)."""
        n, n_proxies = score.shape
        m = min(request.depth, n_proxies)
        exact = self._exact_rows_mask(rows)
        values, cand = top
        first = values.shape[1]
        threshold = _lower(values[:, m - 1].to(torch.float64) - 2 * bound, score.dtype)
        counts = (values >= threshold[:, None]).sum(dim=1)
        more = counts == first
        if first < n_proxies and bool(more.any()):
            counts[more] = (score[more] >= threshold[more, None]).sum(dim=1)
        exact |= counts > EXACT_ROW_FRACTION * n_proxies
        dist = torch.empty(n, m, dtype=torch.float64, device=score.device)
        idx = torch.empty(n, m, dtype=torch.int64, device=score.device)
        test_rows = torch.arange(rows.start, rows.stop, device=score.device)
        if bool(exact.any()):
            every = torch.arange(n_proxies, device=score.device)
            ref = self._reference_all(test_rows[exact], every, request)
            dist[exact], idx[exact] = smallest_stable(ref, m)
        rest = torch.nonzero(~exact).flatten()
        rest = rest[torch.argsort(counts[rest])]
        d = self.views["base"].shape[1]
        for batch in rerank_batches(counts[rest].tolist(), max(1, RERANK_ELEMENTS // d)):
            local = rest[batch]
            k = int(counts[local].max())
            if k <= first:
                some = cand[local, :k]
            else:
                some = torch.topk(score[local], k, dim=1, sorted=False).indices
            some = torch.sort(some, dim=1).values  # by proxy index: ties go to the lower one
            ref = self._reference(test_rows[local], some, request)
            dd, col = smallest_stable(ref, m)
            dist[local], idx[local] = dd, torch.gather(some, 1, col)
        return dist, idx

    def _exact_rows_mask(self, rows: slice) -> torch.Tensor:
        """Rows no score can rank: a zero test row (its scaled scores are all zero)."""
        return self.test_norm[rows] <= NORM_EPS

    def _reference_all(self, test_rows, proxies, request):
        """Reference values of test_rows against every proxy in `proxies` (ascending indices),
        in bounded pieces; the same kernels as _reference, broadcast instead of gathered."""
        d = self.views["base"].shape[1]
        cols = max(1, min(len(proxies), RERANK_ELEMENTS // d))
        per = max(1, RERANK_ELEMENTS // (cols * d))
        out = torch.empty(len(test_rows), len(proxies), dtype=torch.float64, device=proxies.device)
        for c in range(0, len(proxies), cols):
            piece = proxies[c : c + cols]
            if request.distance == "euclidean":  # cdist's direct kernel needs no broadcast
                p = self.views[request.view][piece].to(torch.float64)
                t = self.tests[request.norm_inf][test_rows].to(torch.float64)
                out[:, c : c + cols] = torch.cdist(t, p, compute_mode=DIRECT)
                continue
            for r in range(0, len(test_rows), per):
                some = test_rows[r : r + per]
                out[r : r + per, c : c + cols] = self._reference(some, piece[None, :], request)
        return out

    def _reference(self, test_rows: torch.Tensor, proxies: torch.Tensor, request: Request):
        """float64 reference of every (test row, proxy) pair: proxies [len(test_rows), k].

        Per-pair kernels (the elementwise product summed, cdist without its matrix-product
        path) whose value for a pair does not depend on the other pairs computed with it.
        """
        f64 = torch.float64
        if request.distance == "cosine":
            x = self._unit_test()[test_rows][:, None, :]
            cos = pair_dot(x, self._rows64("base", proxies))
            return (1.0 - cos / self.base_norm[proxies].clamp_min(NORM_EPS)).clamp_min_(0.0)
        p = self._rows64(request.view, proxies)
        if request.distance == "inner_product":
            return pair_dot(self.tests["none"][test_rows].to(f64)[:, None, :], p)
        t = self.tests[request.norm_inf][test_rows].to(f64)[:, None, :]
        return torch.cdist(t, p, compute_mode=DIRECT)[:, 0, :]

    def _rows64(self, view: str, index: torch.Tensor) -> torch.Tensor:
        """A view's rows at `index` (any shape) in float64, a fresh tensor: gathered from a
        float64 copy of the whole view where that is small (it is gathered many times)."""
        rows = self.views[view]
        if rows.numel() > SMALL_VIEW_ELEMENTS:
            return rows[index].to(torch.float64)
        key = f"float64 {view}"
        if key not in self.buffers:
            self.buffers[key] = rows.to(torch.float64)
        return self.buffers[key][index]

    def _unit_test(self) -> torch.Tensor:
        if self.shared.unit is None:
            self.shared.unit = _unit(self.tests["none"].to(torch.float64))
        return self.shared.unit

    # --- max: the class of the best inner product -------------------------------------------

    def _max(self, score: torch.Tensor, bound: torch.Tensor, rows: slice, view: str):
        """Class of the largest reference inner product, ties to the lower class."""
        none = torch.full((score.shape[0],), -math.inf, dtype=score.dtype, device=score.device)
        per_class = torch.stack(
            [
                score[:, a:b].amax(dim=1) if b > a else none  # no proxies: never chosen
                for a, b in zip(self.starts[:-1], self.starts[1:])
            ],
            dim=1,
        )
        best, pred = per_class.max(dim=1)
        reach = _lower(best.to(torch.float64) - 2 * bound, score.dtype)
        contenders = (per_class >= reach[:, None]).sum(dim=1)
        open_rows = torch.nonzero(contenders > 1).flatten()
        if open_rows.numel() == 0:
            return pred
        n_proxies = score.shape[1]
        counts = (score[open_rows] >= reach[open_rows, None]).sum(dim=1)
        proxy_class = torch.repeat_interleave(
            torch.arange(len(self.starts) - 1, device=score.device),
            torch.tensor(self.starts[1:], device=score.device)
            - torch.tensor(self.starts[:-1], device=score.device),
        )
        request = Request("max", "inner_product", view)
        test_rows = torch.arange(rows.start, rows.stop, device=score.device)
        order = torch.argsort(counts)
        open_rows, counts = open_rows[order], counts[order]
        d = self.views["base"].shape[1]
        for batch in rerank_batches(counts.tolist(), max(1, RERANK_ELEMENTS // d)):
            local = open_rows[batch]
            k = int(counts[batch].max())
            if k > EXACT_ROW_FRACTION * n_proxies:
                some = torch.arange(n_proxies, device=score.device).expand(len(local), -1)
                ref = self._reference_all(test_rows[local], some[0], request)
            else:
                some = torch.topk(score[local], k, dim=1, sorted=False).indices
                ref = self._reference(test_rows[local], some, request)
            scores = torch.full(
                (len(local), len(self.starts) - 1),
                -math.inf,
                dtype=torch.float64,
                device=score.device,
            )
            scores.scatter_reduce_(1, proxy_class[some], ref, reduce="amax")
            pred[local] = torch.argmax(scores, dim=1)  # the first maximum: the lower class
        return pred


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1, eps=NORM_EPS)


def _lower(threshold: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A float64 threshold rounded down into the score's dtype: more candidates are safe."""
    t = threshold.to(dtype)
    return torch.nextafter(t, torch.full_like(t, -math.inf))
