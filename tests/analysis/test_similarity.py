"""Linear CKA (analysis/similarity.py) against normalised HSIC, and its invariances."""

import math

import numpy as np
import pytest

from imprint.analysis.similarity import linear_cka


def _cka_hsic(x, y):
    """CKA as normalised HSIC of the linear Gram matrices (Kornblith et al. 2019, eq. 3-4)."""
    n = x.shape[0]
    h = np.eye(n) - 1.0 / n
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    hsic = lambda a, b: np.trace(a @ b) / (n - 1) ** 2  # noqa: E731
    return hsic(k, l_) / math.sqrt(hsic(k, k) * hsic(l_, l_))


def test_linear_cka_equals_normalised_hsic_and_its_invariances():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 7))
    y = x @ rng.standard_normal((7, 4)) + 0.5 * rng.standard_normal((30, 4))
    assert linear_cka(x, y, block_rows=8) == pytest.approx(_cka_hsic(x, y), rel=1e-10)
    q, _ = np.linalg.qr(rng.standard_normal((7, 7)))
    assert linear_cka(x, x @ q * 3.0 + 5.0) == pytest.approx(1.0)  # rotation, scale, shift
    with pytest.raises(ValueError, match="same images: got 30 and 29 rows"):
        linear_cka(x, y[:29])
