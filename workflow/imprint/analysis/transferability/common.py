"""What the transferability estimators share: the error for data an estimator has no finite
value on, the one-hot targets, and float64's rounding unit."""

from __future__ import annotations

import numpy as np

FLOAT64_EPS = float(np.finfo(np.float64).eps)


class EstimatorUndefined(ValueError):
    """A transferability estimator has no finite value on these (valid) data: the message
    names the estimator, why, and what it needs. `imprint transferability` writes such an
    estimate as JSON null with one warning line; called directly, it is a ValueError."""


def one_hot(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct labels and the one-hot targets [n, classes]; a ValueError for fewer than 2
    classes (no estimate compares anything then)."""
    classes, index = np.unique(labels, return_inverse=True)
    if classes.size < 2:
        raise ValueError(
            f"a transferability estimate needs at least 2 classes, got {classes.tolist()}"
        )
    return classes, np.eye(classes.size)[index]
