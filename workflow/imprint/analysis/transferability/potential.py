"""PED (Li et al., ICCV 2023, "Exploring Model Transferability through the Lens of Potential
Energy"): the classes pushed apart by their repulsive forces, as fine-tuning would, then
LogME of the moved rows (ped)."""

from __future__ import annotations

import numpy as np

from imprint.analysis.transferability.common import EstimatorUndefined, one_hot
from imprint.analysis.transferability.linear import logme

# The authors' defaults (github lixiaotong97/PED, evaluate_metric_cpu.py and metrics.py).
PED_TIME_STEP = 0.1
PED_SIGMAS = 0.6  # a class's radius in standard deviations (their nsigma; 0.3 or 0.6)
PED_FORCE_CONSTANT = 1.0
PED_EXIT_RATIO = 0.5
PED_MAX_STEPS = 6
PED_STD_FLOOR = 1e-3


def ped(features: np.ndarray, labels: np.ndarray) -> float:
    """PED + LogME of features [n, D] for integer labels [n] (higher: expected to transfer
    better), the authors' PED_Score with their defaults and LogME as the score (the paper's
    PED + LogME).

    The rows are standardised by the column means m and standard deviations σ (at least
    1e-3) of the given features (the authors' rescaling uses another data set's, ImageNet
    validation features of the same backbone; none is at hand here, so the task's own). One
    step, in standardised coordinates: per class c its mean μ_c and radius R_c = √(Σ_d
    var_d(class c)) (1/n_c); each pair i ≠ j overlapping, F_ij = max(0.6 (R_i + R_j) − ‖μ_i −
    μ_j‖, 0) > 0, repels: class i moves by Σ_j −u_ij · min(½ t² k F_ij, F_ij), u_ij the unit
    vector from μ_i to μ_j, t = 0.1, k = 1 (every row of the class alike). The steps repeat,
    each from the moved rows, at most 6 times; the first is always taken, a later one only
    while its total movement Σ |displacements| exceeds 0.5 × the first's. The moved rows,
    back in the original coordinates, go to LogME (linear.py).

    Degenerate data: coinciding class means exert no force (no direction); nothing overlaps
    (e.g. one row per class: radius 0) means no movement, PED = LogME. Where LogME has no
    finite value EstimatorUndefined (a ValueError) is raised, naming PED.
    """
    x = np.asarray(features, dtype=np.float64)
    _, targets = one_hot(np.asarray(labels))
    index = targets.argmax(axis=1)
    centre = x.mean(axis=0)
    scale = np.maximum(x.std(axis=0), PED_STD_FLOOR)
    z = (x - centre) / scale
    counts = targets.sum(axis=0)
    means = (targets.T @ z) / counts[:, None]
    # A step moves every row of a class alike: the radii stay, only the means move.
    radius = np.sqrt((targets.T @ (z - means[index]) ** 2).sum(axis=1) / counts)
    del z
    moved = np.zeros_like(means)
    first = None
    for _ in range(PED_MAX_STEPS):
        shift = _repulsion(means + moved, radius)
        movement = float(np.abs(shift).sum())
        first = movement if first is None else first
        if movement == 0 or movement <= PED_EXIT_RATIO * first:
            break
        moved += shift
    if first:
        x = x + moved[index] * scale  # (z + shifts) · σ + m, z = (x − m) / σ
    try:
        return logme(x, labels)
    except EstimatorUndefined as err:
        raise EstimatorUndefined(
            f"PED (LogME of the moved rows) is undefined here: {err}"
        ) from None


def _repulsion(means: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Each class's displacement in one PED step [C, D], from the class means [C, D] and radii
    [C] in standardised coordinates (ped): −Σ_j w_ij (μ_j − μ_i), w_ij = step_ij / d_ij."""
    from scipy.spatial.distance import cdist

    distance = cdist(means, means)
    overlap = np.maximum(PED_SIGMAS * (radius[:, None] + radius[None, :]) - distance, 0.0)
    step = np.minimum(0.5 * PED_TIME_STEP**2 * PED_FORCE_CONSTANT * overlap, overlap)
    apart = distance > 0  # coinciding means (and i = j): no direction, no force
    weight = np.where(apart, step / np.where(apart, distance, 1.0), 0.0)
    return weight.sum(axis=1)[:, None] * means - weight @ means
