"""PED (analysis/transferability/potential.py) against the authors' update written out pair by
pair (their One_Step_PED and PED_Score loop with their defaults), then LogME; a hand-worked
step; degenerate data."""

import math
import warnings

import numpy as np
import pytest
from test_transferability import _degenerate

from imprint.analysis.transferability.common import EstimatorUndefined
from imprint.analysis.transferability.linear import logme
from imprint.analysis.transferability.potential import ped


def _moved_direct(x, y, step=0.1, nsigma=0.6, constant=1.0, exit_ratio=0.5, steps=6):
    """The rows after the authors' loop: standardise by the rows' own mean and std (≥ 1e-3),
    repel each overlapping pair of classes, at most 6 steps while the movement exceeds half
    the first's."""
    x = np.asarray(x, np.float64)
    m, s = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-3)
    classes = list(np.unique(y))
    first = None
    for _ in range(steps):
        z = (x - m) / s
        mu = {c: z[y == c].mean(axis=0) for c in classes}
        radius = {c: math.sqrt(z[y == c].var(axis=0).sum()) for c in classes}
        shift = {c: np.zeros(x.shape[1]) for c in classes}
        for a in classes:
            for b in classes:
                if a >= b:
                    continue
                d = np.linalg.norm(mu[b] - mu[a])
                force = max(nsigma * (radius[a] + radius[b]) - d, 0.0)
                if d == 0 or force == 0:
                    continue
                move = min(0.5 * step**2 * constant * force, force) * (mu[b] - mu[a]) / d
                shift[a] -= move
                shift[b] += move
        change = sum(np.abs(v).sum() for v in shift.values())
        first = change if first is None else first
        if first == 0 or change / first <= exit_ratio:
            break
        for c in classes:
            z[y == c] += shift[c]
        x = z * s + m
    return x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ped_is_logme_of_the_authors_moved_rows(seed):
    rng = np.random.default_rng(seed)
    y = np.repeat([2, 5, 6, 9], [20, 25, 15, 30])
    x = rng.standard_normal((y.size, 7)) * (1 + 0.3 * (y[:, None] % 3)) + 0.3 * y[:, None]
    moved = _moved_direct(x, y)
    assert not np.allclose(moved, x)  # the classes overlap: the rows do move
    assert ped(x, y) == pytest.approx(logme(moved, y), rel=1e-9, abs=1e-12)
    assert ped(x, y) != pytest.approx(logme(x, y), rel=1e-6)


def test_ped_one_step_hand_worked():
    # Two 1-D classes in standardised units: rows -1, 1 (class 0) and 0.5, 2.5 (class 1).
    # Mean 0.75, std √1.3125 ≈ 1.146; in those units the class radii are 1/1.146 each, the
    # means 2/1.146 apart, F = 0.6·2/1.146 − 2/1.146 < 0: no overlap at nσ = 0.6, no move.
    x = np.array([[-1.0], [1.0], [0.5], [2.5]])
    y = np.array([0, 0, 1, 1])
    assert ped(x, y) == logme(x, y)
    # Closer: class 1 = 0.1, 0.3 (radius 0.1): F = 0.6·(1 + 0.1)/σ − 0.2/σ = 0.46/σ > 0.
    x = np.array([[-1.0], [1.0], [0.1], [0.3]])
    moved = _moved_direct(x, y)
    sigma = x.std()
    shift = 0.5 * 0.01 * 0.46 / sigma  # ½ t² k F, standardised; class 0 moves down
    assert moved[0, 0] - x[0, 0] < 0 < moved[2, 0] - x[2, 0]
    np.testing.assert_allclose(
        _moved_direct(x, y, steps=1)[:, 0] - x[:, 0], [-shift * sigma] * 2 + [shift * sigma] * 2
    )
    assert ped(x, y) == pytest.approx(logme(moved, y), rel=1e-12)


@pytest.mark.parametrize(
    "kind",
    ["constant_columns", "wide", "two_per_class", "one_per_class", "identical_class"]
    + ["all_identical"],
)
def test_ped_is_finite_on_degenerate_data(kind):
    x, y = _degenerate(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = ped(x, y)
    assert math.isfinite(value)
    assert value == pytest.approx(logme(_moved_direct(x, y), y), rel=1e-9, abs=1e-12)


def test_ped_with_coinciding_class_means_exerts_no_force():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((20, 3))
    x = np.vstack([base, base])  # two classes of the same rows: same means, no direction
    y = np.repeat([0, 1], 20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ped(x, y) == logme(x, y)


def test_ped_names_itself_where_logme_is_undefined():
    with pytest.raises(EstimatorUndefined, match=r"PED \(LogME of the moved rows\).*LogME is"):
        ped(*_degenerate("every_class_identical"))
