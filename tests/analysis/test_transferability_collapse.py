"""NC1 and VCI as transferability estimates (analysis/transferability/collapse_measures.py):
their formula on degenerate data, and where they are undefined."""

import numpy as np
import pytest
from test_transferability import _degenerate, _stats


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("one_per_class", "{} needs a class of at least 2 rows .* every class here has 1 row"),
        ("all_identical", "{} is undefined here: the class means .* coincide"),
    ],
)
@pytest.mark.parametrize("name", ["nc1", "vci"])
def test_nc1_and_vci_refuse_data_they_are_undefined_on(kind, message, name):
    from imprint.analysis.transferability.collapse_measures import collapse_estimate
    from imprint.analysis.transferability.common import EstimatorUndefined

    x, y = _degenerate(kind)
    with pytest.raises(EstimatorUndefined, match=message.format(name.upper())):
        collapse_estimate(name, *_stats(x, y))


@pytest.mark.parametrize(
    "kind", ["wide", "two_per_class", "constant_columns", "every_class_identical"]
)
def test_nc1_on_degenerate_features_equals_its_formula(kind):
    from imprint.analysis.transferability.collapse_measures import collapse_estimate

    x, y = _degenerate(kind)
    u = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    means = np.stack([u[y == c].mean(0) for c in range(3)])
    sigma_w = np.mean([np.cov(u[y == c].T, bias=True) for c in range(3)], axis=0)
    centred = means - u.mean(0)
    sigma_b = centred.T @ centred / 3
    pinv = np.linalg.pinv(sigma_b, rcond=1e-10, hermitian=True)
    expected = np.trace(sigma_w @ pinv) / 3
    assert collapse_estimate("nc1", *_stats(x, y)) == pytest.approx(expected, rel=1e-6, abs=1e-12)
