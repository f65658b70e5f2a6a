"""Baselines beside imprinting on the same frozen embeddings: a linear probe and dinov2's kNN.

Neither is in the paper; they answer a reviewer's first question (how does imprinting compare
with the standard evaluations of a frozen representation?).

Linear probe: multinomial logistic regression with an L2 penalty on the weights (not on the
biases), the objective of scikit-learn's LogisticRegression(C=1/λ):
    λ/2 ‖W‖² + Σ_i log-loss(x_i W + b, y_i),
minimised full-batch by L-BFGS (torch.optim.LBFGS with a strong-Wolfe line search: the loss
is smooth and strictly convex, so a quasi-Newton method on every row at once reaches the
optimum in tens of iterations, on CUDA where present, with no learning rate to tune). λ is chosen
on a held-out stratified part of the training rows (linear evaluations of frozen features
choose their hyper-parameters on a validation split, e.g. CLIP_benchmark's weight-decay
search), the best held-out accuracy winning (ties: the
larger λ), then the probe is refit on every training row with the same penalty per row. For two
classes the softmax model penalises w₁ and w₂ = -w₁, i.e. λ/4 ‖w₁ - w₂‖²: scikit-learn's binary
LogisticRegression with C = 2/λ.

kNN (dinov2's evaluation): cosine similarity s between L2-normalised test and training rows,
the k most similar training rows vote for their class with weight exp(s / T), T = 0.07; the
class with the largest vote wins (ties: the lower class index).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from imprint.engine.vocabulary import KNN_MIN_TEMPERATURE, KNN_TEMPERATURE

# The penalty search's candidates, as weight decay per training row (the convention of probes
# trained on the mean loss with weight decay): λ = rows × decay, so the
# same grid suits 500 and 500,000 rows. 1e-6 barely regularises, 1e2 leaves a near-uniform
# classifier.
DEFAULT_DECAYS = tuple(float(v) for v in np.logspace(-6, 2, 9))
HELD_OUT_FRACTION = 0.2
KNN_KS = (10, 20, 100, 200)


@dataclasses.dataclass(frozen=True)
class LinearProbe:
    """A fitted probe: scores = x @ weight.T + bias; `penalty` the λ it was fitted with."""

    weight: torch.Tensor  # [classes, D]
    bias: torch.Tensor  # [classes]
    penalty: float
    iterations: int
    evaluations: int  # of the objective and its gradient (passes over the rows)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class index (position in the task's classes) of each row; ties: the lower index."""
        scores = x.to(self.weight.dtype) @ self.weight.T + self.bias
        return torch.argmax(scores, dim=1)


def fit_logistic(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    penalty: float,
    start: LinearProbe | None = None,
    tolerance: float = 1e-4,
    max_iter: int = 1000,
) -> LinearProbe:
    """Multinomial logistic regression, λ/2 ‖W‖² + Σ log-loss, by full-batch L-BFGS.

    x [n, D] (float32 or float64: the arithmetic follows it), y [n] class indices 0..n_classes-1.
    `start`: a probe to start from (warm start along the penalty path). Stops when the largest
    gradient entry of the objective divided by n falls below `tolerance` (scikit-learn's
    criterion and default, 1e-4), or after `max_iter` iterations.
    """
    if penalty <= 0:
        raise ValueError(f"the probe's L2 penalty λ must be positive, got {penalty}")
    n, dim = x.shape
    # Fitted on centred rows: x·w + b = (x - μ)·w + (b + μ·w) and only w is penalised, so the
    # optimum's w is the same and b = b' - μ·w; but the problem is far better conditioned
    # (non-negative ReLU features share a large mean), so L-BFGS needs several times fewer
    # iterations.
    mean = x.mean(dim=0)
    x = x - mean
    w = torch.zeros(n_classes, dim, dtype=x.dtype, device=x.device)
    b = torch.zeros(n_classes, dtype=x.dtype, device=x.device)
    if start is not None:
        w.copy_(start.weight)
        b.copy_(start.bias + start.weight @ mean)
    w.requires_grad_(True)
    b.requires_grad_(True)
    target = y.to(x.device, torch.long)
    optimizer = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=tolerance,
        tolerance_change=0.0,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def objective():
        optimizer.zero_grad()
        logits = torch.addmm(b, x, w.T)
        # Divided by n (the same optimum): the first step and tolerance are then independent
        # of the number of rows, as in scikit-learn.
        loss = torch.nn.functional.cross_entropy(logits, target, reduction="mean")
        loss = loss + (0.5 * penalty / n) * (w * w).sum()
        loss.backward()
        return loss

    optimizer.step(objective)
    state = optimizer.state[optimizer._params[0]]
    iterations, evaluations = state.get("n_iter", 0), state.get("func_evals", 0)
    w = w.detach()
    return LinearProbe(w, b.detach() - w @ mean, float(penalty), int(iterations), int(evaluations))


def held_out_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (fit, held out): `fraction` of each class held out (at least one row of
    every class with two or more), drawn with numpy's generator seeded with `seed`."""
    rng = np.random.default_rng(seed)
    fit, held = [], []
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        n_held = (
            min(len(rows) - 1, max(1, int(round(fraction * len(rows))))) if len(rows) > 1 else 0
        )
        held.append(rows[:n_held])
        fit.append(rows[n_held:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(held))


def linear_probe(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    penalties: Sequence[float] | None = None,
    seed: int = 0,
    held_out: float = HELD_OUT_FRACTION,
    tolerance: float = 1e-4,
) -> tuple[LinearProbe, dict[float, float]]:
    """The probe refit on every row with the λ of the best held-out accuracy, and the held-out
    accuracy (percent) of every λ tried. Penalties are tried from the largest down, each fit
    starting from the previous one's weights. penalties=None: the rows being fitted ×
    DEFAULT_DECAYS (then the refit on every row uses the chosen decay × all rows, the same
    regularisation per row)."""
    y_np = y.cpu().numpy()
    fit_rows, held_rows = held_out_split(y_np, held_out, seed)
    per_row = penalties is None
    if per_row:
        penalties = [d * len(fit_rows) for d in DEFAULT_DECAYS]
    if len(penalties) == 0:
        raise ValueError("the penalty search needs at least one λ")
    fit_x, fit_y = x[torch.from_numpy(fit_rows).to(x.device)], y[torch.from_numpy(fit_rows)]
    held_x = x[torch.from_numpy(held_rows).to(x.device)]
    held_y = y[torch.from_numpy(held_rows)].to(x.device)
    scores: dict[float, float] = {}
    previous = None
    for penalty in sorted(penalties, reverse=True):
        previous = fit_logistic(fit_x, fit_y, n_classes, penalty, previous, tolerance)
        correct = (previous.predict(held_x) == held_y).double().mean()
        scores[float(penalty)] = float(100.0 * correct) if len(held_rows) else 0.0
    # The best held-out accuracy; ties go to the larger λ (the simpler model).
    best = max(sorted(scores, reverse=True), key=lambda p: scores[p])
    final = best * len(y_np) / len(fit_rows) if per_row else best
    return fit_logistic(x, y, n_classes, final, tolerance=tolerance), scores


def check_knn_temperature(temperature: float) -> None:
    """Refuse a kNN temperature whose votes exp(s/T) overflow float64 (or NaN)."""
    if not temperature >= KNN_MIN_TEMPERATURE:
        raise ValueError(
            f"the kNN temperature must be at least {KNN_MIN_TEMPERATURE} (its votes exp(s/T) "
            f"overflow float64 below), got {temperature}"
        )


def knn_predict(
    train: torch.Tensor,
    train_classes: torch.Tensor,
    test: torch.Tensor,
    n_classes: int,
    ks: Sequence[int] = KNN_KS,
    temperature: float = KNN_TEMPERATURE,
    block_rows: int = 4096,
) -> dict[int, torch.Tensor]:
    """dinov2's weighted kNN: predicted class index of each test row, per k in `ks`.

    The engine's own path (as the grid configuration GEN all, AGG mnn, distance cosine,
    weighting exp_similarity, m = k runs it): one cosine neighbour list of the largest k
    (aggregate.nearest_proxies: a float32 product picks candidates, float64 values decide,
    equal similarities to the lower training row) read by aggregate.vote for every k (a k
    larger than the training rows uses them all).
    """
    from imprint.engine.aggregate import nearest_proxies, vote

    check_knn_temperature(temperature)
    if not ks or min(ks) < 1:
        raise ValueError(f"kNN needs k >= 1, got {list(ks)}")
    top = min(max(ks), train.shape[0])
    depths = sorted({min(k, top) for k in ks})
    labels = train_classes.to(train.device, torch.long)
    out: dict[int, list[torch.Tensor]] = {k: [] for k in ks}
    for start in range(0, test.shape[0], block_rows):
        distances, index = nearest_proxies(
            test[start : start + block_rows].float(), train.float(), "cosine", top
        )
        preds = vote(labels[index], distances, depths, "exp_similarity", n_classes, temperature)
        for k in ks:
            out[k].append(preds[min(k, top)])
    return {k: torch.cat(v) for k, v in out.items()}
