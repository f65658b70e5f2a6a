"""Stitching between frozen final embeddings: can model A's embeddings stand in for model B's
under B's classifier, once mapped by an affine map?

Balogh & Jelasity (AAAI 2025, "How not to Stitch Representations to Measure Similarity") show
that a stitching map fitted by task-loss matching reaches high accuracy even from low-rank or
out-of-distribution representations, so its accuracy is a poor similarity measure, while direct
matching (least squares onto B's embeddings) is not fooled. Here every ordered pair of backbones
gets the four matchings (MATCHINGS: direct, direct on K rows, orthogonal Procrustes, task loss)
under B's two classifiers (CLASSIFIERS: the imprinted mean classifier, a linear probe); each row
reports the accuracy of A's mapped test rows under B's classifier, the relative residual against
B's own embeddings, and how many mapped rows land outside B's training distribution.

The direct fits come from moments shared across pairs (stitching_fit); task-loss matching and
B's classifiers live in stitching_task.
"""

from __future__ import annotations

import dataclasses
import itertools
import time

import numpy as np
import torch

from imprint.analysis.similarity import linear_cka
from imprint.analysis.stitching_fit import (
    AffineMap,
    CentredSolver,
    Moments,
    fit_direct,
    fit_orthogonal,
    joint_moments,
    moments_residual,
    orthogonal_from_moments,
    polar_factor,
    relative_residual,
    sample_rows,
)
from imprint.analysis.stitching_task import (
    DEFAULT_NORMS,
    TASK_TEMPERATURE,
    Classifier,
    fit_task_loss,
    mean_classifier,
    probe_classifier,
)

__all__ = [
    "CLASSIFIERS",
    "MATCHINGS",
    "TASK_TEMPERATURE",
    "AffineMap",
    "Classifier",
    "b_classifiers",
    "fit_direct",
    "fit_orthogonal",
    "fit_task_loss",
    "kth_neighbour_distance",
    "mean_classifier",
    "ood_fraction",
    "principal_axes",
    "probe_classifier",
    "rank_approximation",
    "rank_grid",
    "rank_sensitivity",
    "rank_sensitivity_all",
    "relative_residual",
    "sample_rows",
    "stitch_all",
    "stitch_pair",
]

MATCHINGS = ("direct", "direct_k", "orthogonal", "task_loss")
CLASSIFIERS = ("mean", "probe")
OOD_ROWS = 4096  # B training rows (neighbours) and test rows scored by stitch_all's ood_fraction


def kth_neighbour_distance(query, reference, k: int, block_rows: int = 2048) -> np.ndarray:
    """Euclidean distance of each query row to its k-th nearest reference row, brute force in
    torch (‖q‖² + ‖r‖² − 2 q·r per block of query rows, then topk): float64 when both inputs
    are, float32 otherwise. Measured faster than sklearn's NearestNeighbors (brute) at 4,096 ×
    4,096 × 2,048 (benchmarks/bench_stitching.py)."""
    both64 = np.asarray(query).dtype == np.float64 and np.asarray(reference).dtype == np.float64
    dtype = torch.float64 if both64 else torch.float32
    q = torch.as_tensor(np.asarray(query), dtype=dtype)
    r = torch.as_tensor(np.asarray(reference), dtype=dtype)
    if not 1 <= k <= r.shape[0]:
        raise ValueError(f"k must be in 1..{r.shape[0]} (the reference rows), got {k}")
    r2 = (r * r).sum(dim=1)
    out = torch.empty(q.shape[0], dtype=dtype)
    for s in range(0, q.shape[0], block_rows):
        block = q[s : s + block_rows]
        d2 = torch.addmm(r2, block, r.T, alpha=-2.0) + (block * block).sum(dim=1, keepdim=True)
        out[s : s + block_rows] = torch.topk(d2, k, dim=1, largest=False).values[:, -1]
    return out.clamp_min(0).sqrt().double().numpy()


def ood_fraction(mapped_test, b_train, b_test, k: int = 10, quantile: float = 0.95) -> float:
    """Fraction of mapped test embeddings whose distance to their k-th nearest B training
    embedding exceeds the `quantile` of the same distance for B's own test embeddings (so B's
    own test rows score about 1 − quantile).

    A k-nearest-neighbour distance rather than a Mahalanobis distance: it assumes no Gaussian
    class shape, follows multi-modal classes, and works when the width D exceeds the rows n,
    where a covariance is singular and Mahalanobis needs an inverse that does not exist.
    """
    threshold = np.quantile(kth_neighbour_distance(b_test, b_train, k), quantile)
    return float(np.mean(kth_neighbour_distance(mapped_test, b_train, k) > threshold))


def b_classifiers(
    b_train, labels, seed: int = 0, norms=DEFAULT_NORMS, names=CLASSIFIERS
) -> dict[str, Classifier]:
    """B's classifiers by name (`names`, of CLASSIFIERS): "mean", mean_classifier with `norms`;
    "probe", probe_classifier."""
    unknown = sorted(set(names) - set(CLASSIFIERS))
    if unknown:
        raise ValueError(f"unknown classifiers {unknown}; allowed: {', '.join(CLASSIFIERS)}")
    makers = {
        "mean": lambda: mean_classifier(b_train, labels, norms=norms),
        "probe": lambda: probe_classifier(b_train, labels, seed=seed),
    }
    return {name: makers[name]() for name in names}


@dataclasses.dataclass
class _Target:
    """What every source stitched onto B reuses: B's classifiers, accuracies, OOD reference."""

    test: np.ndarray
    heads: dict[str, Classifier]
    accuracy: dict[str, float]
    reference: np.ndarray | None  # B training rows, the neighbours of the OOD test
    scored: np.ndarray | None  # test rows scored for OOD
    threshold: float


def _accuracy(classifier: Classifier, z, labels) -> float:
    return float(100.0 * np.mean(classifier.predict(z) == labels))


def _target(train, test, heads, test_labels, ood_rows, seed) -> _Target:
    accuracy = {name: _accuracy(h, test, test_labels) for name, h in heads.items()}
    if ood_rows == 0:
        return _Target(test, heads, accuracy, None, None, float("nan"))
    reference = sample_rows(len(train), min(ood_rows or len(train), len(train)), seed)
    scored = sample_rows(len(test), min(ood_rows or len(test), len(test)), seed)
    reference = np.asarray(train[reference])
    own = kth_neighbour_distance(test[scored], reference, 10)
    return _Target(test, heads, accuracy, reference, scored, float(np.quantile(own, 0.95)))


def _evaluate(mapping: AffineMap, a_test, target: _Target, test_labels, heads) -> dict:
    # Mapped in the inputs' own precision: float32 rows are only known to float32's.
    a_test = np.asarray(a_test)
    if a_test.dtype == np.float32:
        w, b = mapping.weight.astype(np.float32), mapping.bias.astype(np.float32)
        mapped = a_test @ w + b
    else:
        mapped = mapping(a_test)
    y = np.asarray(target.test)
    square = ((mapped - y) ** 2).sum(dtype=np.float64)
    out = {"residual": float(square / (y**2).sum(dtype=np.float64))}
    if target.reference is None:
        out["ood_fraction"] = float("nan")
    else:
        far = kth_neighbour_distance(mapped[target.scored], target.reference, 10)
        out["ood_fraction"] = float(np.mean(far > target.threshold))
    out["stitched"] = {name: _accuracy(heads[name], mapped, test_labels) for name in heads}
    return out


class _Fits:
    """The maps of every pair from shared work: one eigendecomposition per source, one polar
    factor per unordered pair, one K-row moment set for direct_k."""

    def __init__(self, sets, moments: Moments, k_rows, seed, train_labels, task_max_iter):
        self.sets, self.moments, self.seed = sets, moments, seed
        self.labels, self.task_max_iter = train_labels, task_max_iter
        self.solvers, self.polar = {}, {}
        self.k_moments = None
        if k_rows is not None:
            n = moments.n
            chosen = sample_rows(n, k_rows, seed)
            self.k_rows = chosen
            self.k_moments = joint_moments({k: sets[k][0][chosen] for k in moments.means})
            self.k_solvers = {}

    def maps(
        self, source, target, matchings, heads
    ) -> list[tuple[str, str | None, AffineMap, int]]:
        """(matching, classifier it was fitted for or None, map, rows fitted) of one pair."""
        out = []
        for matching in matchings:
            if matching == "direct":
                if source not in self.solvers:
                    rows = self.sets[source][0]  # used only where the Gram is ill-conditioned
                    self.solvers[source] = CentredSolver(self.moments, source, rows)
                out.append((matching, None, self.solvers[source].solve(target), self.moments.n))
            elif matching == "direct_k" and self.k_moments is not None:
                if source not in self.k_solvers:
                    rows = self.sets[source][0][self.k_rows]
                    self.k_solvers[source] = CentredSolver(self.k_moments, source, rows)
                fit = self.k_solvers[source].solve(target)
                out.append((matching, None, fit, self.k_moments.n))
            elif matching == "orthogonal":
                out.append((matching, None, self._orthogonal(source, target), self.moments.n))
            elif matching == "task_loss":
                a_train = self.sets[source][0]
                for name, head in heads.items():
                    fit = fit_task_loss(a_train, self.labels, head, self.seed, self.task_max_iter)
                    out.append((matching, name, fit, self.moments.n))
        return out

    def _orthogonal(self, source, target) -> AffineMap:
        if (target, source) in self.polar:  # the reverse pair's rotation, transposed
            rotation = self.polar[(target, source)].T
        else:
            rotation = polar_factor(self.moments.block(source, target))
            self.polar[(source, target)] = rotation
        return orthogonal_from_moments(self.moments, source, target, rotation)


def _check(sets, pairs, matchings) -> list[tuple[str, str]]:
    unknown = sorted(set(matchings) - set(MATCHINGS))
    if unknown:
        raise ValueError(f"unknown matchings {unknown}; allowed: {', '.join(MATCHINGS)}")
    if pairs is None:
        return list(itertools.permutations(sets, 2))
    pairs = [tuple(p) for p in pairs]
    missing = sorted({name for p in pairs for name in p} - set(sets))
    if missing:
        raise ValueError(f"pairs name embeddings not given: {missing}; given: {sorted(sets)}")
    return pairs


def _train_residual(moments: Moments, mapping: AffineMap, sets: dict, pair) -> float:
    """The relative residual on the training rows: from the shared moments, or from the rows
    themselves where rounding would swamp the moments' sum (moments_residual says where)."""
    found = moments_residual(moments, mapping, *pair)
    if found is None:
        found = relative_residual(mapping, sets[pair[0]][0], sets[pair[1]][0])
    return found


def _targets(sets, pairs, classifiers, labels, ood, norms) -> dict[str, _Target]:
    """Each target's classifiers (given, else made with `norms`), own accuracies and OOD
    reference."""
    (train_labels, test_labels), (ood_rows, seed) = labels, ood
    targets = {}
    for name in dict.fromkeys(t for _, t in pairs):
        heads = (classifiers or {}).get(name)
        heads = heads or b_classifiers(sets[name][0], train_labels, seed, norms)
        targets[name] = _target(*sets[name], heads, test_labels, ood_rows, seed)
    return targets


def stitch_all(
    sets: dict,
    train_labels,
    test_labels,
    *,
    pairs=None,
    k_rows: int | None = None,
    seed: int = 0,
    matchings=MATCHINGS,
    classifiers: dict | None = None,
    precision: str = "float64",
    ood_rows: int | None = OOD_ROWS,
    task_max_iter: int = 100,
    timings: dict | None = None,
    norms=DEFAULT_NORMS,
) -> list[dict]:
    """stitch_pair's rows for each ordered pair (source A, target B) of `sets` ({name: (train,
    test)}, rows aligned across names), each with "source" and "target" first; `norms`: the
    mean classifier's (NORMpre, NORMpost, NORMinf) where B's are made here. pairs: the
    (source, target) names (default every ordered pair). classifiers: {target: {name:
    Classifier}} (a target not given: b_classifiers of its training rows). One joint Gram of
    every embedding's training rows (joint_moments in `precision`) gives every source's Gram
    and every pair's cross-product. ood_rows: B training rows (neighbours) and test rows drawn
    (sample_rows, `seed`) for ood_fraction; None every row, 0 none (NaN). Test rows are
    mapped in their own precision (float32 rows by a float32 product, twice as fast; the
    rows' own rounding is no finer). timings: a dict that receives seconds per phase."""
    pairs = _check(sets, pairs, matchings)
    clock, times = time.perf_counter(), {} if timings is None else timings
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    used = [name for name in sets if any(name in p for p in pairs)]
    moments = joint_moments({name: sets[name][0] for name in used}, precision)
    times["moments"], clock = time.perf_counter() - clock, time.perf_counter()
    targets = _targets(
        sets, pairs, classifiers, (train_labels, test_labels), (ood_rows, seed), norms
    )
    times["targets"], clock = time.perf_counter() - clock, time.perf_counter()
    fits = _Fits(sets, moments, k_rows, seed, train_labels, task_max_iter)
    rows = []
    times.update(fit=times.get("fit", 0.0), evaluate=times.get("evaluate", 0.0))
    for source, target in pairs:
        b = targets[target]
        maps = fits.maps(source, target, matchings, b.heads)
        times["fit"], clock = times["fit"] + time.perf_counter() - clock, time.perf_counter()
        for matching, fitted_for, mapping, n_rows in maps:
            heads = b.heads if fitted_for is None else {fitted_for: b.heads[fitted_for]}
            scores = _evaluate(mapping, sets[source][1], b, test_labels, heads)
            train_residual = _train_residual(moments, mapping, sets, (source, target))
            for name, stitched in scores["stitched"].items():
                rows.append(
                    {"source": source, "target": target, "matching": matching, "classifier": name}
                    | {"residual": scores["residual"], "train_residual": train_residual}
                    | {"stitched_accuracy": stitched, "target_accuracy": b.accuracy[name]}
                    | {"penalty": b.accuracy[name] - stitched}
                    | {"ood_fraction": scores["ood_fraction"], "rows": n_rows}
                )
        times["evaluate"], clock = (
            times["evaluate"] + time.perf_counter() - clock,
            time.perf_counter(),
        )
    return rows


def stitch_pair(
    a_train,
    a_test,
    b_train,
    b_test,
    train_labels,
    test_labels,
    *,
    k_rows: int | None = None,
    seed: int = 0,
    matchings=MATCHINGS,
    classifiers: dict[str, Classifier] | None = None,
    **options,
) -> list[dict]:
    """One dict per (matching, classifier) of A stitched onto B (rows aligned: the same images
    in the same order): "matching", "classifier", "residual" (relative, A's mapped test rows
    against B's), "train_residual" (the same on every training row), "stitched_accuracy"
    (percent: A's mapped test rows under B's classifier), "target_accuracy" (B's own test rows),
    "penalty" (target − stitched, percentage points), "ood_fraction", "rows" (training rows
    fitted). direct, direct_k and orthogonal are fitted once and evaluated under every
    classifier; task_loss is fitted per classifier; direct_k is left out when k_rows is None.
    options: stitch_all's precision, ood_rows, task_max_iter, timings."""
    rows = stitch_all(
        {"A": (a_train, a_test), "B": (b_train, b_test)},
        train_labels,
        test_labels,
        pairs=[("A", "B")],
        k_rows=k_rows,
        seed=seed,
        matchings=matchings,
        classifiers=None if classifiers is None else {"B": classifiers},
        **options,
    )
    return [{k: v for k, v in row.items() if k not in ("source", "target")} for row in rows]


def rank_grid(dim: int) -> list[int]:
    """[dim, then the powers of two below dim, descending, down to 1]."""
    if dim < 1:
        raise ValueError(f"the width must be at least 1, got {dim}")
    powers = [2**p for p in range(int(dim).bit_length(), -1, -1) if 2**p < dim]
    return [int(dim), *powers]


def principal_axes(a_train) -> tuple[np.ndarray, np.ndarray]:
    """A's training mean μ and its principal axes (eigenvectors of the centred Gram, the
    largest variance first, as columns)."""
    moments = joint_moments({"a": a_train})
    return moments.means["a"], np.linalg.eigh(moments.centred)[1][:, ::-1]


def rank_approximation(a_train, a_test, rank: int, axes=None) -> tuple[np.ndarray, np.ndarray]:
    """A's training and test rows reconstructed from the top-`rank` principal components of the
    training rows: μ + (x − μ) V_r V_rᵀ in float64 (`axes`: principal_axes(a_train), if
    already computed); rank = dA returns the inputs themselves."""
    if rank == np.shape(a_train)[1]:
        return a_train, a_test
    mu, vectors = principal_axes(a_train) if axes is None else axes
    basis = vectors[:, :rank]
    return tuple((np.asarray(x, np.float64) - mu) @ basis @ basis.T + mu for x in (a_train, a_test))


def rank_sensitivity(
    a_train,
    a_test,
    b_train,
    b_test,
    train_labels,
    test_labels,
    *,
    ranks=None,
    seed: int = 0,
    matchings=("direct", "orthogonal", "task_loss"),
    classifiers: dict[str, Classifier] | None = None,
    axes=None,
    task_max_iter: int = 100,
) -> list[dict]:
    """Stitching from A's rank-r approximations: the top-r principal components of A's
    training rows (centred by their mean μ; train and test reconstructed in A's space,
    μ + (x − μ) V_r V_rᵀ), r over `ranks` (default rank_grid(dA)); r = dA is no truncation,
    the inputs as they are. Rows: {"rank", "matching", "classifier", "stitched_accuracy",
    "residual", "cka"}, cka the linear CKA of A_r's and B's test rows. axes:
    principal_axes(a_train), if already computed.

    Task-loss matching at r < dA is fitted in the r principal coordinates z = (x − μ) V_r:
    every affine map of the rank-r rows is one of z (x W = z V_rᵀ W), so the maps and their
    optimum are the same, with r × dB parameters instead of dA × dB; the seeded start is drawn
    in those coordinates (W' ~ N(0, 1/r))."""
    a_train, a_test = np.asarray(a_train), np.asarray(a_test)
    dim = a_train.shape[1]
    ranks = rank_grid(dim) if ranks is None else [int(r) for r in ranks]
    if any(not 1 <= r <= dim for r in ranks):
        raise ValueError(f"ranks must lie in 1..{dim}, got {ranks}")
    heads = classifiers or b_classifiers(b_train, train_labels, seed)
    if axes is None and min(ranks) < dim:
        axes = principal_axes(a_train)
    rows = []
    for r in ranks:
        train, test = rank_approximation(a_train, a_test, r, axes)
        cka = linear_cka(test, b_test)
        in_coordinates = r < dim and "task_loss" in matchings
        direct = [m for m in matchings if not (in_coordinates and m == "task_loss")]
        found = stitch_pair(
            train, test, b_train, b_test, train_labels, test_labels, seed=seed,
            matchings=direct, classifiers=heads, ood_rows=0, task_max_iter=task_max_iter,
        )  # fmt: skip
        if in_coordinates:
            found += _task_loss_in_coordinates(
                (a_train, test), b_test, (train_labels, test_labels), heads, (r, axes),
                (seed, task_max_iter),
            )  # fmt: skip
        keep = ("matching", "classifier", "stitched_accuracy", "residual")
        rows += [{"rank": r} | {k: row[k] for k in keep} | {"cka": cka} for row in found]
    return rows


def _task_loss_in_coordinates(a, b_test, labels, heads, rank_axes, fit) -> list[dict]:
    """rank_sensitivity's task-loss rows at rank r < dA, fitted on A's r principal
    coordinates and turned into the same affine map of A's rank-r rows."""
    (a_train, a_test_r), (train_labels, test_labels) = a, labels
    (rank, (mu, vectors)), (seed, max_iter) = rank_axes, fit
    basis = vectors[:, :rank]
    coordinates = ((np.asarray(a_train, np.float64) - mu) @ basis).astype(np.float32)
    y = np.asarray(b_test, np.float64)
    rows = []
    for name, head in heads.items():
        small = fit_task_loss(coordinates, train_labels, head, seed, max_iter)
        weight = basis @ small.weight
        mapping = AffineMap(weight, small.bias - mu @ weight)
        mapped = mapping(a_test_r)
        rows.append(
            {
                "matching": "task_loss",
                "classifier": name,
                "stitched_accuracy": _accuracy(head, mapped, test_labels),
                "residual": float(((mapped - y) ** 2).sum() / (y**2).sum()),
            }
        )
    return rows


def rank_sensitivity_all(
    sets: dict,
    train_labels,
    test_labels,
    *,
    pairs=None,
    seed: int = 0,
    classifiers=CLASSIFIERS,
    norms=DEFAULT_NORMS,
    **options,
) -> list[dict]:
    """rank_sensitivity for each ordered pair of `sets` ({name: (train, test)}, rows aligned;
    pairs: (source, target) names, default every ordered pair), each row with "source" and
    "target" first; each target's classifiers (the names in `classifiers`) and each source's
    principal axes are computed once. options: rank_sensitivity's ranks, matchings,
    task_max_iter."""
    pairs = _check(sets, pairs, options.get("matchings", ()))
    heads, axes, rows = {}, {}, []
    for source, target in pairs:
        (a_train, a_test), (b_train, b_test) = sets[source], sets[target]
        if target not in heads:
            heads[target] = b_classifiers(b_train, train_labels, seed, norms, classifiers)
        if source not in axes:
            axes[source] = principal_axes(a_train)
        found = rank_sensitivity(
            a_train, a_test, b_train, b_test, train_labels, test_labels,
            seed=seed, classifiers=heads[target], axes=axes[source], **options,
        )  # fmt: skip
        rows += [{"source": source, "target": target} | row for row in found]
    return rows
