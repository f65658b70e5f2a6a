"""Task-loss matching for stitching: B's frozen classifiers and the affine map from A fitted to
their cross-entropy (Balogh & Jelasity, AAAI 2025: it reaches high accuracy from representations
that are not similar, which is why it is a poor similarity measure)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from imprint.analysis.stitching_fit import AffineMap
from imprint.engine.baselines import linear_probe
from imprint.engine.normalize import apply_norm, apply_norm_post

__all__ = [
    "TASK_TEMPERATURE",
    "Classifier",
    "fit_task_loss",
    "mean_classifier",
    "probe_classifier",
]

# The mean classifier's logits in task-loss matching are cosine / T: cosines in [-1, 1] need a
# scale for a cross-entropy to be able to approach zero; 0.07 is CLIP's and dinov2's kNN
# temperature.
TASK_TEMPERATURE = 0.07
HISTORY_SIZE = 10  # L-BFGS's memory: 10 pairs of [dA, dB] vectors (640 MiB at 2048², float32)


@dataclasses.dataclass(frozen=True)
class Classifier:
    """B's frozen classifier: logits = normalise(z) @ weight.T + bias, the rows normalised to
    unit length only when `unit_inputs`."""

    weight: np.ndarray  # [C, dB] float64
    bias: np.ndarray  # [C]
    unit_inputs: bool

    def logits(self, z) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        if self.unit_inputs:
            norms = np.linalg.norm(z, axis=1, keepdims=True)
            z = z / np.where(norms > 0, norms, 1.0)  # a zero row stays zero
        return z @ self.weight.T + self.bias

    def predict(self, z) -> np.ndarray:
        """Class index of each row; ties: the lowest index."""
        return np.argmax(self.logits(z), axis=1)


def _classes(labels, n_classes: int | None) -> tuple[np.ndarray, int]:
    labels = np.asarray(labels)
    n = int(labels.max()) + 1 if n_classes is None else int(n_classes)
    empty = sorted(set(range(n)) - set(np.unique(labels).tolist()))
    if empty:
        raise ValueError(f"classes {empty[:5]} have no training rows (labels are 0..{n - 1})")
    return labels, n


# NORMpre, NORMpost, NORMinf of the mean classifier by default: Qi et al.'s (Table 1's first row).
DEFAULT_NORMS = ("l2", "l2", "l2")
MEAN_NORMS = ("none", "l2")  # each of the three (quantile NORMpost is not a linear classifier)


def mean_classifier(
    b_train, labels, n_classes: int | None = None, norms=DEFAULT_NORMS
) -> Classifier:
    """B's imprinted classifier with GEN mean and AGG max: `norms` = (NORMpre, NORMpost,
    NORMinf), each none or l2; by default Qi et al.'s (the paper's Table 1, first row: rows
    unit, proxies unit, test rows unit), the largest inner product wins. Computed in float64
    with the engine's normalisations."""
    if len(norms) != 3 or any(n not in MEAN_NORMS for n in norms):
        raise ValueError(
            f"norms are (NORMpre, NORMpost, NORMinf), each one of {', '.join(MEAN_NORMS)}; "
            f"got {list(norms)}"
        )
    labels, n = _classes(labels, n_classes)
    norm_pre, norm_post, norm_inf = norms
    rows = apply_norm(torch.as_tensor(np.asarray(b_train), dtype=torch.float64), norm_pre)
    index = torch.as_tensor(labels)
    means = [rows[index == c].mean(dim=0, keepdim=True) for c in range(n)]
    proxies = torch.cat(apply_norm_post(means, norm_post)).numpy()
    return Classifier(proxies, np.zeros(n), norm_inf == "l2")


def probe_classifier(
    b_train, labels, seed: int = 0, penalties=None, n_classes: int | None = None
) -> Classifier:
    """engine.baselines.linear_probe fitted on B's training rows (its penalty search unless
    `penalties` are given), its weights and biases as a Classifier (unit_inputs False)."""
    labels, n = _classes(labels, n_classes)
    probe, _ = linear_probe(
        torch.as_tensor(np.asarray(b_train)), torch.as_tensor(labels), n, penalties, seed
    )
    return Classifier(probe.weight.double().numpy(), probe.bias.double().numpy(), False)


def fit_task_loss(
    x, labels, classifier: Classifier, seed: int = 0, max_iter: int = 100, dtype=torch.float32
) -> AffineMap:
    """Task-loss matching: W, b minimising the mean cross-entropy of B's frozen classifier on
    x W + b (the mean classifier's logits divided by TASK_TEMPERATURE, a probe's as they are).

    Optimiser: full-batch torch.optim.LBFGS (strong-Wolfe line search, history 10, lr 1) from
    W ~ N(0, 1/dA) drawn with a torch.Generator seeded with `seed`, b = 0. It stops when the
    largest gradient entry falls below 1e-7 (tolerance_grad), the loss or step changes by less
    than 1e-9 (torch's tolerance_change), or after `max_iter` iterations (and 1.25 × max_iter
    evaluations). The rows are centred for conditioning (x W + b = (x − μ) W + (b + μ W), the
    same function; the start is the same map). float32 by default: on the tests' toy problems
    float64 reaches the same accuracy at twice the cost of each of the n·dA·dB products.
    """
    xt = torch.as_tensor(np.asarray(x), dtype=dtype)
    target = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    dim_a, dim_b = xt.shape[1], classifier.weight.shape[1]
    generator = torch.Generator().manual_seed(int(seed))
    start = torch.randn(dim_a, dim_b, generator=generator, dtype=torch.float64) / dim_a**0.5
    mean = xt.mean(dim=0, dtype=torch.float64)
    xc = (xt - mean.to(dtype)).contiguous()
    b = (mean @ start).to(dtype).requires_grad_(True)
    w = start.to(dtype).clone().requires_grad_(True)
    weight = torch.as_tensor(classifier.weight, dtype=dtype)
    bias = torch.as_tensor(classifier.bias, dtype=dtype)
    scale = 1.0 / TASK_TEMPERATURE if classifier.unit_inputs else 1.0
    optimizer = torch.optim.LBFGS(
        [w, b],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-7,
        history_size=HISTORY_SIZE,
        line_search_fn="strong_wolfe",
    )

    def objective():
        optimizer.zero_grad()
        z = torch.addmm(b, xc, w)
        if classifier.unit_inputs:
            z = torch.nn.functional.normalize(z, dim=1)
        logits = torch.addmm(bias, z, weight.T) * scale
        loss = torch.nn.functional.cross_entropy(logits, target)
        loss.backward()
        return loss

    optimizer.step(objective)
    w64 = w.detach().double()
    return AffineMap(w64.numpy(), (b.detach().double() - mean @ w64).numpy())
