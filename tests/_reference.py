"""Independent numpy references the tests compare the library against."""

import numpy as np


def ls_closed_form(groups, lam: float) -> np.ndarray:
    """ls weights [C, D] by the closed form (1/C) Mᵀ A⁻¹, A = Σ_T + μμᵀ + λI, in float64 numpy.

    `groups` are the C classes (or, for kls, clusters) as [n_c, D] arrays; μ and Σ_T are the
    mean and scatter of all their rows, M [D, C] the group means. A is symmetric, so
    Mᵀ A⁻¹ = (A⁻¹ M)ᵀ.
    """
    groups = [np.asarray(g, dtype=np.float64) for g in groups]
    x = np.concatenate(groups)
    mu = x.mean(axis=0)
    a = (x - mu).T @ (x - mu) / len(x) + np.outer(mu, mu) + lam * np.eye(x.shape[1])
    means = np.stack([g.mean(axis=0) for g in groups], axis=1)
    return np.linalg.solve(a, means).T / len(groups)
