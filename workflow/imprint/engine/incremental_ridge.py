"""RanPAC (McDonnell et al., NeurIPS 2023, "RanPAC: Random Projections and Pre-trained Models
for Continual Learning"; code github.com/RanPAC/RanPAC, RanPAC.py) on frozen embeddings: the
training-free variant (the code's `ncm` model with use_RP and M > 0, no first-session PETL).

    W  [d, M]  entries N(0, 1), drawn once (torch.Generator seeded with `seed`; the code:
               torch.randn unseeded);
    h = ReLU(x W)                                          (the code's CosineLinear with W_rand);
    G = Σ_sessions Hᵀ H,  Q = Σ_sessions Hᵀ Y              (Y one-hot in {0, 1}, target2onehot);
    W_out = (G + λ I)⁻¹ Q                                  (torch.linalg.solve, not an inverse);
    prediction = argmax_c (h · W_out)_c                   (raw scores: the head's sigma is 1 and
                                                           nothing divides by norms).

λ (`optimise_ridge_parameter`): the grid 10^-8, 10^-7, …, 10^8; the session's rows are split
into the first 80 % (fit) and the last 20 % (held out) of a random order (the code's shuffled
loader; here a numpy permutation seeded with `seed` and the session index); for each λ the
ridge on the fit rows alone predicts the held-out one-hot targets, the smallest mean squared
error wins (ties: the smaller λ, np.argmin). λ is chosen on the base session's rows and kept
(`reselect_ridge` False, the default); the authors' code re-selects it from each session's rows
(its replace_fc runs every session), which `reselect_ridge: true` gives, though a few-shot
session's 80/20 split of 25 rows makes that choice noisy. The selection solves by the
eigendecomposition of the fit rows' Gram (or, with fewer fit rows than M, of their kernel
H Hᵀ): the same ridge as one solve per λ, in float64.

G and Q are accumulated in float64, so the session-by-session ridge equals the ridge on every
seen row at once up to rounding (tests/engine/test_incremental_methods.py). While fewer rows
than M have been seen, the state keeps the rows instead and solves the same ridge in its dual
form, W_out = Hᵀ (H Hᵀ + λ I)⁻¹ Y: n² M instead of n M² + M³ (a digits run at M = 10,000 takes
seconds). M: the paper's 10,000 (the default here) costs n·M² for G alone; on a 2-core CPU that
is minutes for the CIFAR-100 protocol, where M = 2,000 fits a minute (benchmarks/RESULTS.md);
on a GPU it is seconds.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

RIDGES = tuple(10.0**k for k in range(-8, 9))
FIT_FRACTION = 0.8
DEFAULT_M = 10_000


def random_projection(dim: int, m: int, seed: int, device: str = "cpu") -> torch.Tensor:
    """W [dim, m] with independent N(0, 1) entries, float32, from a generator seeded `seed`."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randn(dim, m, generator=gen, dtype=torch.float32).to(device)


def project(x: np.ndarray | torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """h = ReLU(x W), float32 on W's device."""
    x = torch.as_tensor(x, dtype=torch.float32).to(w.device)
    return torch.relu(x @ w)


def one_hot(y: np.ndarray | torch.Tensor, n_classes: int, device) -> torch.Tensor:
    """Targets in {0, 1}, float64 [n, n_classes] (the code's target2onehot)."""
    y = torch.as_tensor(np.asarray(y), dtype=torch.long, device=device)
    out = torch.zeros(len(y), n_classes, dtype=torch.float64, device=device)
    out[torch.arange(len(y), device=device), y] = 1.0
    return out


def ridge_losses(h_fit, y_fit, h_held, y_held, ridges=RIDGES) -> np.ndarray:
    """Held-out mean squared error of the ridge (G_fit + λI)⁻¹ Q_fit for each λ, float64.

    Primal (eigh of Hᵀ H, M × M) when there are at least M fit rows, else dual (eigh of H Hᵀ):
    (HᵀH + λI)⁻¹ Hᵀ = Hᵀ (H Hᵀ + λI)⁻¹, so both are the same ridge.
    """
    h_fit, h_held = h_fit.double(), h_held.double()
    if h_fit.shape[0] >= h_fit.shape[1]:
        evals, vecs = torch.linalg.eigh(h_fit.T @ h_fit)
        left = h_held @ vecs  # [n_held, M]
        right = vecs.T @ (h_fit.T @ y_fit)  # [M, C]
    else:
        evals, vecs = torch.linalg.eigh(h_fit @ h_fit.T)
        left = (h_held @ h_fit.T) @ vecs  # [n_held, n_fit]
        right = vecs.T @ y_fit
    evals = evals.clamp_min(0.0)  # a PSD Gram: negative eigenvalues are rounding
    losses = []
    for lam in ridges:
        pred = (left / (evals + lam)) @ right
        losses.append(float(((pred - y_held) ** 2).mean()))
    return np.array(losses)


def select_ridge(h: torch.Tensor, y: np.ndarray, n_classes: int, seed: int, ridges=RIDGES):
    """λ for one session's rows h [n, M], labels y: the code's 80 / 20 split of a seeded
    random order, the smallest held-out MSE over `ridges` (ties: the first, smaller λ)."""
    if h.shape[0] < 2:
        raise ValueError(f"RanPAC's λ search needs at least 2 rows in a session, got {h.shape[0]}")
    order = np.random.default_rng(seed).permutation(h.shape[0])
    n_fit = int(h.shape[0] * FIT_FRACTION)
    fit, held = order[:n_fit], order[n_fit:]
    targets = one_hot(y, n_classes, h.device)
    idx = torch.as_tensor(fit, device=h.device), torch.as_tensor(held, device=h.device)
    losses = ridge_losses(h[idx[0]], targets[idx[0]], h[idx[1]], targets[idx[1]], ridges)
    return float(ridges[int(np.argmin(losses))]), losses


@dataclasses.dataclass
class RanpacState:
    """The running statistics: G [M, M] and Q [M, classes seen] in float64 (None while fewer
    rows than M have been seen: `rows` and `labels` keep them for the dual form), the number
    of classes seen and the chosen λ."""

    w_rand: torch.Tensor
    gram: torch.Tensor | None = None
    q: torch.Tensor | None = None
    ridge: float | None = None
    rows: list = dataclasses.field(default_factory=list)
    labels: list = dataclasses.field(default_factory=list)
    n_seen: int = 0


def ranpac_init(dim: int, m: int, seed: int, device: str = "cpu") -> RanpacState:
    """An empty state with its seeded projection."""
    return RanpacState(random_projection(dim, m, seed, device))


def ranpac_update(
    state: RanpacState, x: np.ndarray, y: np.ndarray, n_seen: int, lam: float | None
) -> RanpacState:
    """Adds one session's rows to G and Q (Q widened to `n_seen` classes), or keeps them while
    fewer than M rows are seen; `lam` replaces λ when given. Returns the same state, updated
    in place."""
    state.n_seen = n_seen
    if lam is not None:
        state.ridge = float(lam)
    state.rows.append(np.asarray(x, dtype=np.float32))
    state.labels.append(np.asarray(y))
    m = state.w_rand.shape[1]
    if state.gram is None and sum(len(r) for r in state.rows) < m:
        return state  # the dual form's rows
    rows, labels = np.concatenate(state.rows), np.concatenate(state.labels)
    state.rows, state.labels = [], []
    if state.gram is None:
        state.gram = torch.zeros(m, m, dtype=torch.float64, device=state.w_rand.device)
        state.q = torch.zeros(m, 0, dtype=torch.float64, device=state.w_rand.device)
    h = project(rows, state.w_rand).double()
    state.q = torch.nn.functional.pad(state.q, (0, n_seen - state.q.shape[1]))
    state.q += h.T @ one_hot(labels, n_seen, h.device)
    state.gram += h.T @ h
    return state


def ranpac_weights(state: RanpacState) -> torch.Tensor:
    """W_out [M, classes seen] = (G + λ I)⁻¹ Q, float64; with fewer rows than M seen, the same
    ridge as Hᵀ (H Hᵀ + λ I)⁻¹ Y."""
    if state.gram is None:
        h = project(np.concatenate(state.rows), state.w_rand).double()
        y = one_hot(np.concatenate(state.labels), state.n_seen, h.device)
        eye = torch.eye(h.shape[0], dtype=torch.float64, device=h.device)
        return h.T @ torch.linalg.solve(h @ h.T + state.ridge * eye, y)
    eye = torch.eye(state.gram.shape[0], dtype=torch.float64, device=state.gram.device)
    return torch.linalg.solve(state.gram + state.ridge * eye, state.q)


def ranpac_predict(h_test: torch.Tensor, weights: torch.Tensor) -> np.ndarray:
    """argmax of the raw scores h · W_out (ties: the lower class index), int64."""
    scores = h_test.to(torch.float32) @ weights.to(torch.float32)
    return torch.argmax(scores, dim=1).cpu().numpy().astype(np.int64)


def ranpac_sessions(sessions, test_features, seed: int, opts, device: str):
    """Yields RanPAC's predictions after each session (sessions already validated)."""
    dim = sessions[0][0].shape[1]
    state = ranpac_init(dim, int(opts["M"]), seed, device)
    h_test = project(test_features, state.w_rand)
    n_seen = 0
    for index, (x, y) in enumerate(sessions):
        n_seen += len(np.unique(y))
        lam = None
        if index == 0 or opts["reselect_ridge"]:
            h = project(x, state.w_rand)
            lam, _ = select_ridge(h, y, n_seen, seed + 1_000_003 * index, opts["ridges"])
        ranpac_update(state, x, y, n_seen, lam)
        yield ranpac_predict(h_test, ranpac_weights(state))
