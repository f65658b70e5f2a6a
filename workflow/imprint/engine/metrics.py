"""Top-1 accuracy in percent, one-vs-rest F1 per class, correct predictions per class."""

from __future__ import annotations

import torch


def accuracy_percent(pred: torch.Tensor, truth: torch.Tensor) -> float:
    return float((pred == truth).double().mean() * 100.0)


def f1_per_class(pred: torch.Tensor, truth: torch.Tensor, n_classes: int) -> list[float]:
    """One-vs-rest F1 (percent) of every class; 0 where precision and recall are both 0."""
    pred, truth = pred.long(), truth.long()
    tp = torch.bincount(truth[pred == truth], minlength=n_classes).double()
    predicted = torch.bincount(pred, minlength=n_classes).double()
    actual = torch.bincount(truth, minlength=n_classes).double()
    # F1 = 2·TP / (2·TP + FP + FN) = 2·TP / (predicted + actual), the same as 2PR/(P+R).
    denom = predicted + actual
    f1 = torch.where(denom > 0, 2.0 * tp / denom.clamp_min(1.0), torch.zeros_like(tp))
    return (f1 * 100.0).tolist()


def correct_per_class(pred: torch.Tensor, truth: torch.Tensor, n_classes: int) -> list[int]:
    """How many test rows of each class are predicted as that class."""
    pred, truth = pred.long(), truth.long()
    return torch.bincount(truth[pred == truth], minlength=n_classes).tolist()
