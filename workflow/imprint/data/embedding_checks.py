"""Whether arrays make an embedding set, checked before anything uses them: the file a .npz
claims to be, 2-D float embeddings with one non-negative integer label per row, finite values
small enough for float32 scores, distinct image ids. imprint.io reads and writes the sets and
runs these checks; each raises an EmbeddingFileError naming the file (`where`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class EmbeddingFileError(ValueError):
    """An embedding file is missing, malformed or holds invalid values."""


def check_npz_signature(path: Path) -> None:
    """Name what a file called .npz really is, before numpy guesses (it calls text "pickled")."""
    with open(path, "rb") as fh:
        head = fh.read(64)
    if head.startswith(b"PK") or head.startswith(b"\x93NUMPY"):
        return  # a zip (npz) or a single .npy: np.load tells them apart
    if not head:
        what = "an empty file (0 bytes)"
    elif head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        what = "a Python pickle (pickled objects are refused: loading one can run any code)"
    elif all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        what = f"a text file (it starts {head[:24].decode()!r})"
    else:
        what = f"neither a zip (.npz) nor a .npy file (it starts {head[:8]!r})"
    raise EmbeddingFileError(
        f"{path}: {what}; an embedding .npz is numpy.savez's zip of arrays 'embeddings' "
        "[N, D] (float) and 'labels' [N] (int)"
    )


def int_labels(labels: np.ndarray, where: str) -> np.ndarray:
    """Labels as int64: integers, or floats that hold whole numbers only."""
    labels = np.asarray(labels)
    if labels.dtype.kind in "iu":
        return labels.astype(np.int64, copy=False)
    if (
        labels.dtype.kind == "f"
        and np.all(np.isfinite(labels))
        and np.all(labels == np.round(labels))
    ):
        return labels.astype(np.int64)
    raise EmbeddingFileError(
        f"{where}: labels must be integers, got dtype {labels.dtype}"
        + (" with non-integer values" if labels.dtype.kind == "f" else "")
    )


def check_shape(embeddings: np.ndarray, labels: np.ndarray, where: str) -> None:
    """Embeddings 2-D, floating point and not empty, one non-negative label per row."""
    if embeddings.ndim != 2:
        raise EmbeddingFileError(
            f"{where}: embeddings must be 2-D [N, D], got shape {embeddings.shape}"
        )
    if embeddings.dtype.kind != "f":
        raise EmbeddingFileError(
            f"{where}: embeddings must be floating point, got {embeddings.dtype}"
        )
    if labels.ndim != 1 or labels.shape[0] != embeddings.shape[0]:
        raise EmbeddingFileError(
            f"{where}: labels must be 1-D with one entry per embedding row; got labels "
            f"{labels.shape} for embeddings {embeddings.shape}"
        )
    if embeddings.shape[0] == 0:
        raise EmbeddingFileError(f"{where}: no rows (embeddings of shape {embeddings.shape})")
    if embeddings.shape[1] == 0:
        raise EmbeddingFileError(f"{where}: no columns (embeddings of shape {embeddings.shape})")
    if labels.dtype.kind == "i" and labels.min() < 0:
        negative = np.unique(labels[labels < 0])
        raise EmbeddingFileError(
            f"{where}: labels must be non-negative class ids; found {negative.size} negative "
            f"label(s): {negative[:5].tolist()}"
        )


def check_row_peaks(peaks: np.ndarray, dim: int, where: str) -> None:
    """Refuse embeddings by each row's largest |value| (`peaks`, NaN where a row holds one):
    a NaN or inf, or values whose squared distances in `dim` dimensions overflow float32."""
    bad = ~np.isfinite(peaks)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise EmbeddingFileError(
            f"{where}: {rows.size} embedding row(s) hold NaN or inf (first rows: {rows[:5].tolist()})"
        )
    # Scores are float32: a squared distance of two rows is at most 4 D max|x|², which must stay
    # finite, or ties and rankings turn silently wrong.
    limit = float(np.sqrt(np.finfo(np.float32).max / (4.0 * max(1, dim))))
    if peaks.size and float(peaks.max()) > limit:
        rows = np.flatnonzero(peaks > limit)
        raise EmbeddingFileError(
            f"{where}: values up to {float(peaks.max()):.3g} (rows {rows[:5].tolist()}): squared "
            f"distances of such {dim}-d rows overflow float32, in which scores are "
            f"computed (|x| must stay below {limit:.3g}); rescale the embeddings"
        )


def checked_ids(ids, n: int, where: str) -> np.ndarray:
    """Image identities as int64 [n], distinct, or an EmbeddingFileError naming `where`."""
    ids = np.asarray(ids)
    if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
        raise EmbeddingFileError(
            f"{where}: image ids must be {n} integers (one per row), got shape {ids.shape} "
            f"of {ids.dtype}"
        )
    ids = ids.astype(np.int64)
    unique, counts = np.unique(ids, return_counts=True)
    if unique.size < n:
        raise EmbeddingFileError(
            f"{where}: image ids must be distinct; id {int(unique[counts > 1][0])} appears "
            f"{int(counts.max())} times"
        )
    return ids
