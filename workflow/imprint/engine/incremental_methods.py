"""Three training-free class-incremental methods on frozen embeddings, as pure functions.

Sessions: (features [n_s, d], global class indices [n_s]); session 0 holds classes 0..B-1,
session s the classes right after those of sessions < s, consecutively, each at least once.
`run_method_sessions` yields, after each session, every test row's predicted class among the
classes seen so far. RanPAC lives in incremental_ridge.py.

FeCAM (Goswami et al., NeurIPS 2023, "FeCAM: Exploiting the Heterogeneity of Class
Distributions in Exemplar-Free Continual Learning"; code github.com/dipamgoswami/FeCAM,
models/base.py, models/fecam.py, utils/maha_utils.py), the code's default configuration
(exps/FeCAM_cifar100.json: tukey, per_class, full_cov, shrink, norm_cov; β = 0.5,
alpha1 = alpha2 = 1):
    T(x) = x^β                          Tukey's ladder of powers (β = 0: log x);
    μ_c  = mean of class c's raw rows   (_build_protos: means of untransformed features);
    Σ_c  = cov(T(X_c)) (np.cov, n - 1)  (compute_new_cov);
    S(Σ) = Σ + γ1 V1 I + γ2 V2 (1 - I), V1 the mean diagonal, V2 the mean of the non-zero
           off-diagonal entries (shrink_cov), applied twice: compute_new_cov shrinks and
           _train shrinks the result again ("we apply covariance shrinkage 2 times");
    K_c  = D^-1/2 S(S(Σ_c)) D^-1/2, D its diagonal (normalize_cov: covariance → correlation);
    d_c(x) = (x̃ - μ̃_c)ᵀ K_c⁻¹ (x̃ - μ̃_c), x̃ = T(x/‖x‖)/‖T(x/‖x‖)‖, μ̃_c = T(μ_c)/‖T(μ_c)‖
           (_eval_maha, _maha_dist, _mahalanobis: F.normalize after the transform);
    prediction: argmin_c d_c(x) (ties: the lower class index).
Few-shot classes: FeCAM defines no other rule; the paper's FSCIL experiments estimate each new
class's covariance from its few shots with the same shrinkage (which makes the rank-deficient
5-shot covariance invertible); base classes' covariances are not borrowed (that is the later
calibration of Goswami et al., CVPRW 2024, not FeCAM). A class needs 2 rows. K_c⁻¹ is applied
by a float64 Cholesky factor of K_c (equal to the code's pinv where K_c is positive definite;
where it is not, e.g. with features constant in a class, by the pseudo-inverse as the code),
the distances as ‖L_c⁻¹ (x̃ - μ̃_c)‖² in float32 (the code's arithmetic) and cached
per class: a class's statistics never change after its session.
Negative features: the code assumes ReLU features (x^0.5 of a negative is NaN). Here T is
extended sign-preserving, sign(x) |x|^β, which is the paper's T on non-negative features and
stays monotone and odd; a warning says so once per process (the authors' README advises no
transform, β = 1, for signed pre-trained ViT features). β = 0 (log) refuses non-positive rows.

FeTrIL (Petit et al., WACV 2023, "FeTrIL: Feature Translation for Exemplar-Free
Class-Incremental Learning"; code github.com/GregoirePetit/FeTrIL, codes/compute_distances.py,
train_classifiers.py, compute_predictions.py), FeTrIL¹ (the paper's default and its tables):
    every past class c takes the new class n* with the nearest centroid (Euclidean,
    sklearn pairwise_distances then argmin; ties: the lower index) and gets the pseudo-features
    f̂ = f - μ_{n*} + μ_c for every row f of n*; new classes keep their real rows;
    means are of raw features; every training row is L2-normalised (the code's intent: its
    loader normalises every batch but, by a slip, the first) and a linear SVM is fitted:
    liblinear's primal L2-regularised squared hinge, C = 1 (regul), tol = 1e-4 (toler),
    one-vs-rest, intercept as a constant feature 1 (regularised, intercept_scaling = 1);
    prediction: argmax_c (x/‖x‖)·w_c + b_c.
Option pseudo = "random" is FeTrIL^rand (a new class drawn per past class, seeded). The base
session fits the SVM on its real rows. Solver: sklearn's LinearSVC (solver = "liblinear")
takes about 3 s per class on 30,000 × 768 rows on the 2-core dev machine, 3 minutes for the 60
base classes, over the 60 s budget; solver = "lbfgs" minimises the same objective
for all classes at once by preconditioned full-batch L-BFGS (svm_fit; float32 by default,
dtype = "float64" for the tight comparisons), stopping when the largest entry of the gradient of
objective / n is below tol (the paper's toler = 1e-4, but liblinear's own criterion is relative
to the gradient at w = 0: not the same stopping point, the same optimum;
tests/engine/test_incremental_methods.py: the same weights to 1e-4 and the same predictions as
LinearSVC fitted there). The default, solver = "auto", takes LinearSVC where rows × classes
≤ AUTO_LIBLINEAR_SIZE (200,000: a few-shot session, a small task; milliseconds each) and the
L-BFGS beyond (a CIFAR-100 base session), where L-BFGS's per-step overhead would dominate.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch

from imprint.engine.devices import resolve_device
from imprint.engine.incremental_ridge import DEFAULT_M, RIDGES, ranpac_sessions

METHODS = ("fecam", "ranpac", "fetril")
DEFAULTS = {
    "fecam": {"beta": 0.5, "gamma1": 1.0, "gamma2": 1.0, "shrink_passes": 2},
    "ranpac": {"M": DEFAULT_M, "ridges": RIDGES, "reselect_ridge": False},
    "fetril": {
        "C": 1.0,
        "tol": 1e-4,
        "pseudo": "nearest",
        "solver": "auto",
        "max_iter": 1000,
        "dtype": "float32",
    },
}
_WARNED = {"negative": False}
# FeTrIL's solver "auto": LinearSVC up to this many rows × classes (its one-vs-rest problems
# take milliseconds there; a few-shot session of 100 classes), the batched L-BFGS beyond.
AUTO_LIBLINEAR_SIZE = 200_000


def method_options(method: str, options: Mapping | None) -> dict:
    """The method's defaults overridden by `options`; unknown names are refused."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; allowed: {', '.join(METHODS)}")
    merged = dict(DEFAULTS[method])
    for key, value in (options or {}).items():
        if key not in merged:
            allowed = ", ".join(merged)
            raise ValueError(f"unknown {method} option {key!r}; allowed: {allowed}")
        merged[key] = value
    if method == "fetril":
        choices = {"pseudo": ("nearest", "random"), "solver": ("auto", "lbfgs", "liblinear")}
        for key, allowed in {**choices, "dtype": ("float32", "float64")}.items():
            if merged[key] not in allowed:
                raise ValueError(f"fetril option {key}={merged[key]!r}; allowed: {allowed}")
    return merged


def check_method_options(options: Mapping[str, Mapping]) -> None:
    """A ValueError naming the method, option or value unless every entry of {method: its
    options} is known (method_options applies the rules)."""
    for method, given in options.items():
        if not isinstance(given, Mapping):
            raise ValueError(f"options of {method!r} must be a mapping, got {given!r}")
        method_options(method, given)


def check_sessions(sessions, test_features) -> list[tuple[np.ndarray, np.ndarray]]:
    """Sessions as (float32 [n, d], int64 [n]) with consecutive class blocks, else ValueError."""
    out, start = [], 0
    test = np.asarray(test_features)
    if len(sessions) == 0:
        raise ValueError("no sessions given")
    for s, (x, y) in enumerate(sessions):
        x, y = np.asarray(x, dtype=np.float32), np.asarray(y)
        if x.ndim != 2 or y.shape != (x.shape[0],) or x.shape[0] == 0:
            raise ValueError(f"session {s}: features {x.shape} and classes {y.shape} disagree")
        if x.shape[1] != test.shape[-1] or test.ndim != 2:
            raise ValueError(f"session {s}: {x.shape[1]}-d rows but test rows {test.shape}")
        classes = np.unique(y)
        expected = np.arange(start, start + len(classes))
        if not np.issubdtype(y.dtype, np.integer) or not np.array_equal(classes, expected):
            raise ValueError(
                f"session {s}: class indices must be {start}..{start + len(classes) - 1} "
                f"(consecutive after the earlier sessions' classes), got {classes.tolist()}"
            )
        out.append((x, y.astype(np.int64)))
        start += len(classes)
    return out


def run_method_sessions(
    method: str,
    sessions: Sequence[tuple[np.ndarray, np.ndarray]],
    test_features: np.ndarray,
    seed: int,
    options: Mapping | None = None,
    device: str = "cpu",
) -> Iterator[np.ndarray]:
    """Yields, after each session, the predicted class index (among classes seen so far,
    int64 [n_test]) of every test row."""
    opts = method_options(method, options)
    checked = check_sessions(sessions, test_features)
    dev = str(resolve_device(device))
    test = np.asarray(test_features, dtype=np.float32)
    runner = {"fecam": fecam_sessions, "ranpac": ranpac_sessions, "fetril": fetril_sessions}
    yield from runner[method](checked, test, seed, opts, dev)


# ---------------------------------------------------------------------------------- FeCAM


def tukey(x: torch.Tensor, beta: float) -> torch.Tensor:
    """Tukey's ladder of powers x^β (β = 0: log x), sign-preserving on negative entries."""
    if beta == 0:
        if bool((x <= 0).any()):
            raise ValueError("FeCAM's Tukey transform with beta = 0 (log) needs positive features")
        return torch.log(x)
    if bool((x < 0).any()) and not _WARNED["negative"]:
        _WARNED["negative"] = True
        warnings.warn(
            "FeCAM: negative features; Tukey's transform applied as sign(x)|x|^beta (the "
            "authors' code assumes non-negative ReLU features; set beta=1 for none)",
            stacklevel=2,
        )
    return torch.sign(x) * torch.abs(x) ** beta


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows divided by their L2 norm (F.normalize: the norm clamped below at 1e-12)."""
    return torch.nn.functional.normalize(x, p=2, dim=-1)


def shrink_covariance(cov: torch.Tensor, gamma1: float, gamma2: float) -> torch.Tensor:
    """Σ + γ1 V1 I + γ2 V2 (1 - I); V1 mean diagonal, V2 mean non-zero off-diagonal entry."""
    eye = torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    off = cov * (1 - eye)
    nonzero = (off != 0).sum()
    v2 = off.sum() / nonzero if int(nonzero) > 0 else off.sum() * 0
    v1 = torch.diagonal(cov).mean()
    return cov + gamma1 * v1 * eye + gamma2 * v2 * (1 - eye)


def correlation(cov: torch.Tensor) -> torch.Tensor:
    """Covariance → correlation: Σ_ij / (sd_i sd_j)."""
    sd = torch.sqrt(torch.diagonal(cov))
    return cov / (sd[:, None] * sd[None, :])


def fecam_class(x: np.ndarray, opts: Mapping, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ̃ [d] float32, K [d, d] float64): one class's normalised mean and its shrunk,
    correlation-normalised covariance of the transformed rows."""
    if x.shape[0] < 2:
        raise ValueError(f"FeCAM needs at least 2 rows per class for a covariance, got {len(x)}")
    rows = torch.as_tensor(x, device=device, dtype=torch.float64)
    t = tukey(rows, opts["beta"])
    centred = t - t.mean(dim=0)
    cov = centred.T @ centred / (rows.shape[0] - 1)
    for _ in range(int(opts["shrink_passes"])):
        cov = shrink_covariance(cov, opts["gamma1"], opts["gamma2"])
    mean = unit_rows(tukey(rows.mean(dim=0), opts["beta"]))
    return mean.float(), correlation(cov)


def fecam_fit(x: np.ndarray, y: np.ndarray, opts: Mapping, device: str = "cpu"):
    """Per class of y (ascending): (means [C, d] float32, correlation matrices [C, d, d])."""
    stats = [fecam_class(x[y == c], opts, device) for c in np.unique(y)]
    return torch.stack([m for m, _ in stats]), torch.stack([k for _, k in stats])


def fecam_test_rows(test: np.ndarray, beta: float, device: str = "cpu") -> torch.Tensor:
    """x̃: the test rows normalised, transformed, normalised again, float32."""
    x = unit_rows(torch.as_tensor(test, dtype=torch.float32, device=device))
    return unit_rows(tukey(x, beta))


def fecam_distances(xt: torch.Tensor, means: torch.Tensor, corrs: torch.Tensor) -> torch.Tensor:
    """Squared Mahalanobis distances [n_test, C]: (x̃ - μ̃_c)ᵀ K_c⁻¹ (x̃ - μ̃_c)."""
    out = torch.empty(xt.shape[0], means.shape[0], dtype=torch.float32, device=xt.device)
    for c in range(means.shape[0]):
        chol, info = torch.linalg.cholesky_ex(corrs[c])
        if int(info) != 0:  # not positive definite (e.g. constant features): the code's pinv
            pinv = torch.linalg.pinv(corrs[c], hermitian=True).float()
            diff = xt - means[c]
            out[:, c] = ((diff @ pinv) * diff).sum(dim=1)
            continue
        eye = torch.eye(chol.shape[0], dtype=chol.dtype, device=chol.device)
        # ‖L⁻¹(x - μ)‖² = ‖(x - μ) L⁻ᵀ‖²: one product per class (a GEMM, faster than a solve)
        inv_t = torch.linalg.solve_triangular(chol, eye, upper=False).T.float().contiguous()
        solved = torch.addmm(-(means[c] @ inv_t), xt, inv_t)
        out[:, c] = (solved * solved).sum(dim=1)
    return out


def fecam_sessions(sessions, test, seed, opts, device) -> Iterator[np.ndarray]:
    """Yields FeCAM's predictions after each session; each class's distances computed once."""
    del seed  # deterministic
    xt = fecam_test_rows(test, opts["beta"], device)
    columns = []
    for x, y in sessions:
        means, corrs = fecam_fit(x, y, opts, device)
        columns.append(fecam_distances(xt, means, corrs))
        yield torch.argmin(torch.cat(columns, dim=1), dim=1).cpu().numpy().astype(np.int64)


# ---------------------------------------------------------------------------------- FeTrIL


def class_means(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean of each class of y (ascending), float64 [C, d]."""
    return np.stack([x[y == c].astype(np.float64).mean(axis=0) for c in np.unique(y)])


def translation_sources(past_means, new_means, pseudo: str = "nearest", seed: int = 0):
    """For each past class, the position (among the new classes) it is translated from:
    the nearest new centroid in Euclidean distance (FeTrIL¹), or a seeded random one."""
    if pseudo == "random":
        rng = np.random.default_rng(seed)
        return rng.integers(0, len(new_means), size=len(past_means))
    d2 = ((past_means[:, None, :] - new_means[None, :, :]) ** 2).sum(axis=2)
    return np.argmin(d2, axis=1)


def pseudo_features(x_new, y_new, new_means, past_means, sources, first_new: int):
    """(rows, classes): for past class c (0-based), f - μ_n + μ_c for every row f of new class
    n = sources[c]; new-class labels start at `first_new`."""
    rows, labels = [], []
    for c, n in enumerate(sources):
        own = x_new[y_new == first_new + n].astype(np.float64)
        rows.append(own - new_means[n] + past_means[c])
        labels.append(np.full(len(own), c, dtype=np.int64))
    return np.concatenate(rows), np.concatenate(labels)


def _augmented(x: np.ndarray, device: str) -> torch.Tensor:
    """L2-normalised rows with a constant 1 appended (liblinear's intercept feature)."""
    rows = unit_rows(torch.as_tensor(x, dtype=torch.float64, device=device))
    return torch.cat([rows, torch.ones(len(rows), 1, dtype=rows.dtype, device=device)], dim=1)


def svm_fit(
    x,
    y,
    n_classes: int,
    c: float = 1.0,
    tol: float = 1e-4,
    max_iter: int = 1000,
    device="cpu",
    dtype: str = "float64",
) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest L2-regularised squared-hinge linear SVM on L2-normalised rows, all classes
    at once: min ½‖w_k‖² + C Σ_i max(0, 1 - s_ik (x_i·w_k + b_k))² (b_k regularised as a
    weight on a constant feature 1), divided by the number of rows n (the same optimum).
    L-BFGS (in `dtype`) on w = P v, P = (I + 2C XᵀX / K)^-1/2, K classes (a preconditioner: the
    same objective reparametrised, far better conditioned for rows sharing a large mean; 1/K: about
    a class's share of the rows is active in its hinge), until the largest
    entry of the objective's gradient in w is below tol, or 10 iterations no longer lower the
    objective by more than the dtype's rounding. Returns (weights [C, d], biases [C])."""
    xa = _augmented(x, device).to(getattr(torch, dtype))
    n = len(xa)
    signs = -torch.ones(n, n_classes, dtype=xa.dtype, device=device)
    signs[torch.arange(n), torch.as_tensor(y, device=device)] = 1.0
    evals, vecs = torch.linalg.eigh(xa.T.double() @ xa.double())
    precond = ((vecs * (1 + 2 * c * evals.clamp_min(0) / n_classes) ** -0.5) @ vecs.T).to(xa.dtype)
    v = torch.zeros(xa.shape[1], n_classes, dtype=xa.dtype, device=device, requires_grad=True)
    opt = torch.optim.LBFGS(
        [v],
        max_iter=10,
        tolerance_grad=0.0,
        tolerance_change=0.0,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def objective():
        opt.zero_grad()
        margin = torch.clamp(1 - signs * (xa @ (precond @ v)), min=0)
        loss = (0.5 * ((precond @ v) ** 2).sum() + c * (margin * margin).sum()) / n
        loss.backward()
        return loss

    last = float("inf")
    for _ in range(max(1, max_iter // 10)):  # the state (history) carries over between steps
        opt.step(objective)
        with torch.no_grad():
            w = precond @ v
            margin = torch.clamp(1 - signs * (xa @ w), min=0)
            grad = (w - 2 * c * xa.T @ (signs * margin)) / n
            loss = float((0.5 * (w * w).sum() + c * (margin * margin).sum()) / n)
        # converged, or 10 iterations gained nothing the dtype can resolve (float32's stall)
        if float(grad.abs().max()) <= tol or loss >= last * (1 - 4 * torch.finfo(xa.dtype).eps):
            break
        last = loss
    w = w.double().cpu().numpy()
    return w[:-1].T.copy(), w[-1].copy()


def svm_fit_liblinear(x, y, c: float = 1.0, tol: float = 1e-4, seed: int = 0):
    """The paper's classifier itself: sklearn LinearSVC (liblinear primal) on L2-normalised rows."""
    from sklearn.svm import LinearSVC

    rows = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    clf = LinearSVC(
        C=c,
        tol=tol,
        dual=False,
        penalty="l2",
        loss="squared_hinge",
        fit_intercept=True,
        intercept_scaling=1,
        random_state=seed,
    )
    clf.fit(rows, y)
    if len(clf.classes_) == 2:  # sklearn's binary case: one hyperplane for class 1
        return np.vstack([-clf.coef_, clf.coef_]), np.array([-clf.intercept_[0], clf.intercept_[0]])
    return clf.coef_, clf.intercept_


def svm_predict(test: np.ndarray, weights: np.ndarray, biases: np.ndarray) -> np.ndarray:
    """argmax_c (x/‖x‖)·w_c + b_c (ties: the lower index), int64."""
    rows = test / np.maximum(np.linalg.norm(test, axis=1, keepdims=True), 1e-12)
    return np.argmax(rows @ weights.T.astype(rows.dtype) + biases, axis=1).astype(np.int64)


def fetril_training_rows(past_means, x_new, y_new, first_new: int, pseudo: str, seed: int):
    """The rows one FeTrIL session trains on: past classes' pseudo-features, then the new
    classes' real rows; with the new classes' means."""
    new_means = class_means(x_new, y_new)
    if len(past_means) == 0:
        return x_new.astype(np.float64), y_new, new_means
    sources = translation_sources(past_means, new_means, pseudo, seed)
    px, py = pseudo_features(x_new, y_new, new_means, past_means, sources, first_new)
    return np.concatenate([px, x_new]), np.concatenate([py, y_new]), new_means


def fetril_sessions(sessions, test, seed, opts, device) -> Iterator[np.ndarray]:
    """Yields FeTrIL's predictions after each session."""
    means = np.zeros((0, sessions[0][0].shape[1]))
    for s, (x, y) in enumerate(sessions):
        first_new = len(means)
        rows, labels, new_means = fetril_training_rows(
            means, x, y, first_new, opts["pseudo"], seed + 1_000_003 * s
        )
        means = np.concatenate([means, new_means])
        solver = opts["solver"]
        if solver == "auto":  # LinearSVC where it is quick, the batched L-BFGS beyond
            small = len(rows) * len(means) <= AUTO_LIBLINEAR_SIZE
            solver = "liblinear" if small else "lbfgs"
        if solver == "liblinear":
            w, b = svm_fit_liblinear(rows, labels, opts["C"], opts["tol"], seed)
        else:
            w, b = svm_fit(
                rows,
                labels,
                len(means),
                opts["C"],
                opts["tol"],
                opts["max_iter"],
                device,
                opts["dtype"],
            )
        yield svm_predict(test, w, b)
