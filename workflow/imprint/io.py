"""File I/O in one place: embedding sets, results tables and atomic writes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pandas is imported where a table is read: it costs a job ~0.5 s
    import pandas as pd

# An embedding set on disk is a directory holding these three files. The .npy files are
# memory-mappable, so jobs that read a few classes never load the whole set.
EMBEDDINGS_FILE = "embeddings.npy"
LABELS_FILE = "labels.npy"
META_FILE = "meta.json"


class EmbeddingFileError(ValueError):
    """An embedding file is missing, malformed or holds invalid values."""


@dataclass
class EmbeddingSet:
    """Embeddings [N, D] (float), integer labels [N] and free-form metadata."""

    embeddings: np.ndarray
    labels: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit(143), so `finally` blocks (atomic_path's clean-up) run.

    SLURM sends SIGTERM at a job's time limit and Snakemake to its jobs on interrupt; Python's
    default is to die on the spot, leaving temporary siblings (GB of embeddings) behind. Only a
    default handler in the main thread is replaced. SIGKILL cannot be caught.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto `path` only if the block succeeds.

    Works for files and directories, so a crash never leaves a half-written output behind
    (nor, with exit_cleanly_on_sigterm, a temporary one after SIGTERM).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def save_embeddings(
    path: str | os.PathLike, embeddings, labels, meta: dict | None = None, where: str | None = None
) -> Path:
    """Write an embedding set atomically: a directory (default) or a single `.npz` file.

    The arrays are checked as float32 (values beyond its range become inf and are reported);
    errors name `where` (default: `path`).
    """
    with np.errstate(over="ignore"):  # reported by the check, naming the file
        embeddings = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
    labels = np.asarray(labels, dtype=np.int64)
    _check_arrays(embeddings, labels, where or str(path))
    meta = dict(meta or {})
    meta.update(n=int(embeddings.shape[0]), dim=int(embeddings.shape[1]))
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".npz":
            with open(tmp, "wb") as fh:
                np.savez(fh, embeddings=embeddings, labels=labels, meta=json.dumps(meta))
        else:
            tmp.mkdir()
            np.save(tmp / EMBEDDINGS_FILE, embeddings)
            np.save(tmp / LABELS_FILE, labels)
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def load_embeddings(path: str | os.PathLike, mmap: bool = True) -> EmbeddingSet:
    """Read an embedding set from a directory written by `save_embeddings` or a plain `.npz`.

    A `.npz` needs two arrays: `embeddings` (float, [N, D]) and `labels` (integer, [N]);
    anything else in it is ignored except an optional JSON string `meta`. Pickled objects are
    refused. Every value is checked: a NaN or inf, a label that is not an integer or a length
    mismatch raises an EmbeddingFileError naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise EmbeddingFileError(f"{path}: no such embedding file or directory")
    if path.is_dir():
        emb_file, lab_file = path / EMBEDDINGS_FILE, path / LABELS_FILE
        for f in (emb_file, lab_file):
            if not f.exists():
                raise EmbeddingFileError(
                    f"{path}: an embedding directory needs {EMBEDDINGS_FILE} and {LABELS_FILE}; "
                    f"{f.name} is missing"
                )
        try:
            embeddings = np.load(emb_file, mmap_mode="r" if mmap else None, allow_pickle=False)
            labels = np.load(lab_file, allow_pickle=False)
        except ValueError as err:
            raise EmbeddingFileError(f"{path}: cannot read arrays ({err})") from err
        meta_file = path / META_FILE
        meta = _parse_meta(meta_file.read_text(), meta_file) if meta_file.exists() else {}
    else:
        try:
            loaded = np.load(path, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise EmbeddingFileError(
                    f"{path}: a single array (.npy), not an embedding set: expected a .npz with "
                    "arrays 'embeddings' [N, D] and 'labels' [N], or an embedding directory"
                )
            with loaded as npz:
                missing = {"embeddings", "labels"} - set(npz.files)
                if missing:
                    raise EmbeddingFileError(
                        f"{path}: missing array(s) {sorted(missing)}; an embedding .npz needs "
                        f"'embeddings' (float, [N, D]) and 'labels' (int, [N]), found {npz.files}"
                    )
                embeddings, labels = npz["embeddings"], npz["labels"]
                meta = (
                    _parse_meta(str(npz["meta"]), f"{path}: array 'meta'")
                    if "meta" in npz.files
                    else {}
                )
        except EmbeddingFileError:
            raise
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
            raise EmbeddingFileError(
                f"{path}: not a readable .npz of plain arrays (pickled objects are refused): {err}"
            ) from err
    labels = _as_int_labels(labels, str(path))
    _check_arrays(embeddings, labels, str(path))
    return EmbeddingSet(embeddings=embeddings, labels=labels, meta=meta)


def import_embeddings(
    source: str | os.PathLike,
    destination: str | os.PathLike,
    classes: list[int] | None = None,
    meta: dict | None = None,
) -> Path:
    """Copy a user's embedding set (.npz or directory) into the workflow's layout, checked.

    Every check of `load_embeddings` applies; `classes`, if given, keeps only those labels'
    rows and each must have some. Embeddings are stored as float32, as extracted ones are;
    `meta` (backbone, dataset, split) overrides the file's own and records where it came from.
    """
    found = load_embeddings(source)
    x, y = found.embeddings, found.labels
    if classes is not None:
        present = set(np.unique(y).tolist())
        missing = sorted(set(classes) - present)
        if missing:
            raise EmbeddingFileError(
                f"{source}: no rows for class(es) {missing} of the dataset's classes "
                f"(labels present: {sorted(present)})"
            )
        keep = np.isin(y, classes)
        x, y = x[keep], y[keep]
    meta = {**found.meta, **(meta or {}), "imported_from": str(source)}
    # float64 values beyond float32's range only show once stored: name the user's file.
    return save_embeddings(destination, x, y, meta, where=f"{source} (as float32)")


def _parse_meta(text: str, where) -> dict:
    """Metadata of an embedding set: a JSON object (backbone, dataset, ...)."""
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        raise EmbeddingFileError(f"{where}: metadata is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise EmbeddingFileError(f"{where}: metadata must be a JSON object, got {text[:60]!r}")
    return meta


def _as_int_labels(labels: np.ndarray, where: str) -> np.ndarray:
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


def _check_arrays(embeddings: np.ndarray, labels: np.ndarray, where: str) -> None:
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
    # In blocks of rows, so a memory-mapped file is never held in memory as a whole.
    step = max(1, (1 << 24) // max(1, embeddings.shape[1]))
    bad = np.concatenate(
        [
            ~np.isfinite(embeddings[i : i + step]).all(axis=1)
            for i in range(0, len(embeddings), step)
        ]
        or [np.zeros(0, dtype=bool)]
    )
    if bad.any():
        rows = np.flatnonzero(bad)
        raise EmbeddingFileError(
            f"{where}: {rows.size} embedding row(s) hold NaN or inf (first rows: {rows[:5].tolist()})"
        )


def check_table_path(path: str | os.PathLike) -> Path:
    """`path` if write_table can write it (.csv or .parquet); call before long work."""
    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise ValueError(f"{path}: results tables are .csv or .parquet, not '{path.suffix}'")
    return path


def write_table(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a results table atomically as CSV or Parquet, chosen by the file suffix."""
    path = check_table_path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
    return path


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV or Parquet table."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such table")
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix in (".csv", ".tsv"):
        return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")
    raise ValueError(f"{path}: tables are .csv, .tsv or .parquet, not '{path.suffix}'")


def progress_bar(iterable=None, **kwargs):
    """tqdm on stderr; in a log file (not a terminal) it writes a line every 30 s, not every
    0.1 s, so rule logs stay readable."""
    import sys

    from tqdm.auto import tqdm

    if not sys.stderr.isatty():
        kwargs.setdefault("mininterval", 30.0)
    return tqdm(iterable, file=sys.stderr, **kwargs)
