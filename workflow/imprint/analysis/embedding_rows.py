"""Rows of an embedding set as the collapse metrics read them (collapse, collapse_classifier):
checked, then read piecewise into fresh float64 arrays, L2-normalised where asked, so a
memory-mapped set is never held in memory as a whole."""

from __future__ import annotations

import numpy as np

__all__ = [
    "checked_chunk_rows",
    "checked_labels",
    "embedding_matrix",
    "prepare_rows",
    "read_rows",
]


def embedding_matrix(embeddings) -> np.ndarray:
    """The embeddings as a non-empty 2-D array of real numbers, still unread."""
    # np.asarray keeps a memmap lazy, so nothing is read here.
    x = embeddings if isinstance(embeddings, np.ndarray) else np.asarray(embeddings)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D array [N, D], got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"embeddings must be real numbers, got dtype {x.dtype}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"embeddings are empty (shape {x.shape})")
    return x


def checked_labels(labels, n: int) -> np.ndarray:
    """The labels as a 1-D array, one per embedding row (`n`)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"labels must have shape ({n},) to match embeddings, got {labels.shape}")
    return labels


def checked_chunk_rows(chunk_rows) -> int:
    """How many rows to read at once: a positive int."""
    if int(chunk_rows) < 1:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    return int(chunk_rows)


def read_rows(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Rows of `x` as a fresh float64 array that the caller may modify in place."""
    first, last = int(rows[0]), int(rows[-1])
    if last - first + 1 == rows.size:
        # Sorted datasets store a class contiguously; a slice reads a memmap sequentially.
        return np.array(x[first : last + 1], dtype=np.float64)
    return np.asarray(x[rows], dtype=np.float64)


def prepare_rows(x: np.ndarray, l2_normalise: bool, what: str) -> np.ndarray:
    """`x` (fresh float64 rows, from read_rows) refused if it holds NaN or inf, else scaled
    in place to unit L2 norm with `l2_normalise`; errors name `what` (a class, rows)."""
    if not np.isfinite(x).all():
        raise ValueError(f"embeddings contain NaN or inf ({what})")
    if l2_normalise:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        if not (norms > 0).all():
            raise ValueError(
                f"an all-zero embedding row cannot be L2-normalised ({what}), as the paper's "
                "metrics normalise each row; drop such rows, or measure without (--no-l2)"
            )
        x /= norms
    return x
