"""How similar two representations of the same images are: linear CKA (Kornblith et al., 2019).

    CKA(X, Y) = ‖XcᵀYc‖²_F / (‖XcᵀXc‖_F · ‖YcᵀYc‖_F),

Xc and Yc the column-centred [n, D1] and [n, D2] embeddings of the same n images, in the same
row order. Streamed: the three cross-products and the column sums are accumulated in float64
over blocks of rows (XcᵀYc = XᵀY − n·x̄ȳᵀ), so an ImageNet-sized pair is never held whole,
only D1 × D2 sums are; memory-mapped inputs are read once.
"""

from __future__ import annotations

import numpy as np

BLOCK_ROWS = 8192


def linear_cka(
    x: np.ndarray, y: np.ndarray, block_rows: int = BLOCK_ROWS, y_rows: np.ndarray | None = None
) -> float:
    """Linear CKA of two embeddings of the same images, in [0, 1]: rows aligned, or
    y_rows[i] the row of `y` holding the image of x's row i (gathered block by block)."""
    if y_rows is not None:
        if y_rows.shape != (x.shape[0],):
            raise ValueError(f"y_rows must give one row of y per row of x, got {y_rows.shape}")
    elif x.shape[0] != y.shape[0]:
        raise ValueError(
            f"CKA compares two embeddings of the same images: got {x.shape[0]} and {y.shape[0]} rows"
        )
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"CKA needs at least 2 images, got {n}")
    xx = np.zeros((x.shape[1], x.shape[1]))
    yy = np.zeros((y.shape[1], y.shape[1]))
    xy = np.zeros((x.shape[1], y.shape[1]))
    sx, sy = np.zeros(x.shape[1]), np.zeros(y.shape[1])
    for start in range(0, n, block_rows):
        bx = np.asarray(x[start : start + block_rows], dtype=np.float64)
        rows = (
            slice(start, start + block_rows)
            if y_rows is None
            else y_rows[start : start + block_rows]
        )
        by = np.asarray(y[rows], dtype=np.float64)
        xx += bx.T @ bx
        yy += by.T @ by
        xy += bx.T @ by
        sx += bx.sum(axis=0)
        sy += by.sum(axis=0)
    mx, my = sx / n, sy / n
    xx -= n * np.outer(mx, mx)
    yy -= n * np.outer(my, my)
    xy -= n * np.outer(mx, my)
    denominator = np.linalg.norm(xx) * np.linalg.norm(yy)
    if denominator == 0:
        raise ValueError("CKA is undefined for an embedding that is constant over the images")
    return float(np.linalg.norm(xy) ** 2 / denominator)
