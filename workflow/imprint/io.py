"""Reading and writing what the workflow keeps: embedding sets (checked and checksummed),
results tables and YAML. Where a command may write, and atomic writes: imprint.outputs; what
makes arrays a valid embedding set (and EmbeddingFileError, which every reader raises and
callers catch from here): imprint.data.embedding_checks."""

from __future__ import annotations

import json
import os
import shlex
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xxhash

from imprint.data.embedding_checks import (
    EmbeddingFileError,
    check_npz_signature,
    check_row_peaks,
    check_shape,
    checked_ids,
    int_labels,
)
from imprint.outputs import atomic_path, check_table_path

if TYPE_CHECKING:  # pandas is imported where a table is read: it costs a job ~0.5 s
    import pandas as pd

# An embedding set on disk is a directory holding these three files. The .npy files are
# memory-mappable, so jobs that read a few classes never load the whole set.
EMBEDDINGS_FILE = "embeddings.npy"
LABELS_FILE = "labels.npy"
META_FILE = "meta.json"
EMBEDDING_FILES = (EMBEDDINGS_FILE, LABELS_FILE, META_FILE)
# Optional: each row's image identity (int64, e.g. its index in the source dataset), so sets of
# the same images from different backbones can be joined by image, not by position. Written and
# checksummed with the set; meta.json (a rule output) changes whenever it does.
IDS_FILE = "ids.npy"
# Each array file's checksum is stored in meta.json at write time and verified by every reader.
# xxh3-128 hashes ~20 GB/s on one core (blake2b 0.56, sha256 1.7, crc32 2.2 GB/s here), and the
# embeddings are hashed in the same pass that checks their values, so verifying costs little
# beyond reading the file (docs/troubleshooting.md).
CHECKSUM_ALGORITHM = "xxh3_128"
_SCAN_BYTES = 1 << 22  # 4 MiB blocks: hashed and checked while still in the CPU's cache
# Where a workflow keeps its cached embedding sets, below its working directory (the start of
# planning/paths.py's EMBEDDINGS; a test holds the two together). A reader's error names the
# command that rebuilds a corrupted set there (rebuild_command).
WORKFLOW_EMBEDDINGS = ("results", "embeddings")


class ChecksumError(EmbeddingFileError):
    """A cached array's bytes differ from those written (its checksum in meta.json)."""


def file_checksum(path: str | os.PathLike) -> str:
    """`xxh3_128:<hex>` of a file's bytes, as stored in an embedding set's meta.json."""
    hasher = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            hasher.update(chunk)
    return f"{CHECKSUM_ALGORITHM}:{hasher.hexdigest()}"


@dataclass
class EmbeddingSet:
    """Embeddings [N, D] (float), integer labels [N] and free-form metadata."""

    embeddings: np.ndarray
    labels: np.ndarray
    meta: dict = field(default_factory=dict)
    ids: np.ndarray | None = None  # [N] int64 image identities, where the set records them

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])


def save_embeddings(
    path: str | os.PathLike,
    embeddings,
    labels,
    meta: dict | None = None,
    where: str | None = None,
    ids=None,
    force: bool = False,
) -> Path:
    """Write an embedding set atomically: a directory (default) or a single `.npz` file.

    The arrays are checked as float32 (values beyond its range become inf and are reported);
    errors name `where` (default: `path`). `ids`: each row's image identity (distinct
    integers), stored beside the arrays.
    """
    with np.errstate(over="ignore"):  # reported by the check, naming the file
        embeddings = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
    labels = np.asarray(labels, dtype=np.int64)
    _check_arrays(embeddings, labels, where or str(path))
    if ids is not None:
        ids = checked_ids(ids, labels.shape[0], where or str(path))
    meta = dict(meta or {})
    meta.update(n=int(embeddings.shape[0]), dim=int(embeddings.shape[1]))
    path = Path(path)
    with atomic_path(path, force) as tmp:
        if path.suffix == ".npz":
            extra = {} if ids is None else {"ids": ids}
            with open(tmp, "wb") as fh:
                np.savez(fh, embeddings=embeddings, labels=labels, meta=json.dumps(meta), **extra)
        else:
            tmp.mkdir()
            np.save(tmp / EMBEDDINGS_FILE, embeddings)
            np.save(tmp / LABELS_FILE, labels)
            files = [EMBEDDINGS_FILE, LABELS_FILE]
            if ids is not None:
                np.save(tmp / IDS_FILE, ids)
                files.append(IDS_FILE)
            # Hashed from the files as written (still in the page cache): header bytes included.
            meta["checksums"] = {f: file_checksum(tmp / f) for f in files}
            (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def load_embeddings(path: str | os.PathLike, mmap: bool = True) -> EmbeddingSet:
    """Read an embedding set from a directory written by `save_embeddings` or a plain `.npz`.

    A `.npz` needs two arrays: `embeddings` (float, [N, D]) and `labels` (integer, [N]);
    anything else in it is ignored except an optional JSON string `meta`. Pickled objects are
    refused. Every value is checked: a NaN or inf, a label that is not an integer or a length
    mismatch raises an EmbeddingFileError naming the file. A directory's files are verified
    against the checksums in its meta.json (ChecksumError on a mismatch, naming the file and
    how to regenerate it; a directory without checksums gets one warning line); a .npz's
    members carry zip CRC-32s, which numpy checks as it reads them.
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
        meta = parse_meta(meta_file.read_text(), meta_file) if meta_file.exists() else {}
        expected = expected_checksums(meta, path)
        if expected is not None:
            _verify_checksum(lab_file, expected[LABELS_FILE], path)
        labels = int_labels(labels, str(path))
        check_shape(embeddings, labels, str(path))
        _check_meta_shape(embeddings, meta, path)
        _scan_embeddings(
            embeddings, str(path), emb_file, None if expected is None else expected[EMBEDDINGS_FILE]
        )
        ids = _load_ids(path, expected, labels.shape[0])
        return EmbeddingSet(embeddings=embeddings, labels=labels, meta=meta, ids=ids)
    return _load_npz(path)


def _load_npz(path: Path) -> EmbeddingSet:
    """A .npz of plain arrays (see load_embeddings), its values checked."""
    check_npz_signature(path)
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
            ids = npz["ids"] if "ids" in npz.files else None
            meta = (
                parse_meta(str(npz["meta"]), f"{path}: array 'meta'") if "meta" in npz.files else {}
            )
    except EmbeddingFileError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        raise EmbeddingFileError(
            f"{path}: not a readable .npz of plain arrays (pickled objects are refused): {err}"
        ) from err
    labels = int_labels(labels, str(path))
    _check_arrays(embeddings, labels, str(path))
    if ids is not None:
        ids = checked_ids(ids, labels.shape[0], f"{path}: array 'ids'")
    return EmbeddingSet(embeddings=embeddings, labels=labels, meta=meta, ids=ids)


def _load_ids(directory: Path, expected: dict | None, n: int) -> np.ndarray | None:
    """A directory's image identities, verified like its arrays; None where it has none."""
    ids_file = directory / IDS_FILE
    listed = expected is not None and IDS_FILE in expected
    if not ids_file.exists():
        if listed:
            raise EmbeddingFileError(
                f"{directory}: {IDS_FILE} is listed in {META_FILE}'s checksums but missing; "
                f"{_regenerate_hint(directory)}"
            )
        return None
    if listed:
        _verify_checksum(ids_file, expected[IDS_FILE], directory)
    try:
        ids = np.load(ids_file, allow_pickle=False)
    except ValueError as err:
        raise EmbeddingFileError(f"{ids_file}: cannot read the image ids ({err})") from err
    return checked_ids(ids, n, str(ids_file))


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
    x, y, ids = found.embeddings, found.labels, found.ids
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
        ids = None if ids is None else ids[keep]
    meta = {**found.meta, **(meta or {}), "imported_from": str(source)}
    # float64 values beyond float32's range only show once stored: name the user's file.
    return save_embeddings(destination, x, y, meta, where=f"{source} (as float32)", ids=ids)


def yaml_error_text(err) -> str:
    """A YAML parse error in one line: 'line L, column C: problem'."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}" + (f" ({context})" if context else "")


_STRICT_LOADER = None  # built on first use: io is imported by jobs that read no YAML


def strict_yaml_loader():
    """yaml.SafeLoader, but a key given twice in one mapping is a yaml ConstructorError at the
    second one's line (yaml.safe_load silently keeps the last). Keys a merge (`<<: *anchor`)
    brings in may still be overridden: only keys written in the mapping itself count."""
    global _STRICT_LOADER
    if _STRICT_LOADER is None:
        import yaml

        class StrictLoader(yaml.SafeLoader):
            def construct_mapping(self, node, deep=False):
                if isinstance(node, yaml.MappingNode):
                    first: dict = {}
                    for key_node, _ in node.value:
                        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == (
                            "tag:yaml.org,2002:merge"
                        ):
                            continue
                        key = self.construct_object(key_node)
                        if key in first:
                            raise yaml.constructor.ConstructorError(
                                None,
                                None,
                                f"duplicate key '{key}' (first given at line {first[key] + 1})",
                                key_node.start_mark,
                            )
                        first[key] = key_node.start_mark.line
                return super().construct_mapping(node, deep=deep)

        _STRICT_LOADER = StrictLoader
    return _STRICT_LOADER


def load_yaml_text(text: str, where: str):
    """Parse YAML as yaml.safe_load does, refusing a key given twice in one mapping: every YAML
    file the package reads goes through here. An error is one line naming `where` (a file):
    '<where>: not valid YAML: line L, column C: problem', e.g. "duplicate key 'base'"."""
    import yaml

    try:
        return yaml.load(text, Loader=strict_yaml_loader())  # a SafeLoader subclass
    except yaml.YAMLError as err:
        raise ValueError(f"{where}: not valid YAML: {yaml_error_text(err)}") from None


def read_yaml(path: str | os.PathLike):
    """load_yaml_text of a file's text; its errors name the file."""
    return load_yaml_text(Path(path).read_text(), str(path))


def rebuild_command(*directories: str | os.PathLike) -> str | None:
    """The command that rebuilds these cached sets of a workflow and everything built from
    them; None unless every one lies in the same workflow's results/embeddings/.

    Snakemake's --forcerun reruns the job that wrote each set and every job downstream of it.
    Deleting a set is not enough: Snakemake leaves a missing intermediate file alone while
    what was built from it is up to date. Paths are the rule outputs' (relative to the
    workflow's working directory, named with --directory unless that is this one).
    """
    roots, files = set(), []
    for directory in directories:
        parts = Path(os.path.abspath(directory)).parts
        starts = [i for i in range(len(parts) - 2) if parts[i : i + 2] == WORKFLOW_EMBEDDINGS]
        if not starts:
            return None
        roots.add(Path(*parts[: starts[-1]]))
        files.append(Path(*parts[starts[-1] :], EMBEDDINGS_FILE).as_posix())
    if len(roots) != 1:
        return None
    root = roots.pop()
    here = root.resolve() == Path.cwd().resolve()
    where = "" if here else f" --directory {shlex.quote(str(root))}"
    return f"snakemake{where} --cores all --forcerun {' '.join(map(shlex.quote, files))}"


def rebuild_advice(directory: Path) -> str:
    """How to write a corrupted set again: the exact command for a workflow's cached set."""
    command = rebuild_command(directory)
    if command is None:
        return (
            f"write {directory} again: rerun the code or command that made it "
            "(imprint.io.save_embeddings, imprint concat)"
        )
    return f"rebuild it and what was built from it with: {command}"


def _regenerate_hint(directory: Path) -> str:
    """rebuild_advice, for a workflow's cached set after a pointer to `imprint verify`."""
    advice = rebuild_advice(directory)
    if rebuild_command(directory) is None:
        return advice
    return f"`imprint verify` lists every corrupted cached set; {advice}"


def expected_checksums(meta: dict, directory: Path) -> dict | None:
    """The stored checksums of a directory's two arrays; None (one warning) where there are none."""
    checksums = meta.get("checksums")
    if checksums is None:
        import warnings

        warnings.warn(
            f"{directory}: no checksums in {META_FILE} (written by hand or before they were "
            "added), so its arrays cannot be verified",
            stacklevel=3,
        )
        return None
    files = (EMBEDDINGS_FILE, LABELS_FILE)
    if not isinstance(checksums, dict) or any(
        not isinstance(checksums.get(f), str)
        or not checksums[f].startswith(f"{CHECKSUM_ALGORITHM}:")
        for f in files
    ):
        raise ChecksumError(
            f"{directory / META_FILE}: 'checksums' must map {list(files)} to "
            f"'{CHECKSUM_ALGORITHM}:<hex>' strings, got {checksums!r}; {_regenerate_hint(directory)}"
        )
    return checksums


def _mismatch(file: Path, expected: str, found: str, directory: Path) -> ChecksumError:
    return ChecksumError(
        f"{file}: checksum mismatch ({META_FILE} says {expected}, the file hashes to {found}): "
        f"the cached array changed after it was written (disk corruption, an edit or a partial "
        f"copy) and is not used; {_regenerate_hint(directory)}"
    )


def _verify_checksum(file: Path, expected: str, directory: Path) -> None:
    found = file_checksum(file)
    if found != expected:
        raise _mismatch(file, expected, found, directory)


def _check_meta_shape(embeddings: np.ndarray, meta: dict, directory: Path) -> None:
    stored = (meta.get("n"), meta.get("dim"))
    if None not in stored and tuple(embeddings.shape) != stored:
        raise ChecksumError(
            f"{directory / EMBEDDINGS_FILE}: holds {embeddings.shape[0]} × {embeddings.shape[1]} "
            f"values but {META_FILE} records {stored[0]} × {stored[1]}; "
            f"{_regenerate_hint(directory)}"
        )


def parse_meta(text: str, where) -> dict:
    """Metadata of an embedding set: a JSON object (backbone, dataset, ...)."""
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        raise EmbeddingFileError(f"{where}: metadata is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise EmbeddingFileError(f"{where}: metadata must be a JSON object, got {text[:60]!r}")
    return meta


def _check_arrays(embeddings: np.ndarray, labels: np.ndarray, where: str) -> None:
    check_shape(embeddings, labels, where)
    _scan_embeddings(embeddings, where)


def _scan_embeddings(
    embeddings: np.ndarray, where: str, file: Path | None = None, expected: str | None = None
) -> None:
    """Refuse NaN/inf rows; with `expected`, hash `file` (the .npy holding `embeddings`) in the
    same pass, block by block, and refuse a mismatch before anything uses the values."""
    # In blocks of rows, so a memory-mapped file is never held in memory as a whole.
    step = max(1, _SCAN_BYTES // max(1, embeddings.shape[1] * embeddings.itemsize))
    raw = hasher = None
    if expected is not None:
        hasher = xxhash.xxh3_128()
        raw = np.memmap(file, dtype=np.uint8, mode="r")  # the file's bytes, header included
        # np.load's memmap knows where the data starts; an array read into memory came from
        # the end of the file (numpy writes nothing after the data).
        start = getattr(embeddings, "offset", raw.size - embeddings.nbytes)
        if not embeddings.flags.c_contiguous or start + embeddings.nbytes > raw.size:
            raw = None  # not one run of bytes in row order: hash the file on its own
            _verify_checksum(file, expected, file.parent)
        else:
            hasher.update(raw[:start])
    row_bytes = embeddings.shape[1] * embeddings.itemsize
    peaks = []
    for i in range(0, len(embeddings), step):
        block = embeddings[i : i + step]
        if raw is not None:
            hasher.update(raw[start + i * row_bytes : start + (i + len(block)) * row_bytes])
        peaks.append(np.abs(block).max(axis=1))  # NaN where a row holds one
    if raw is not None:
        hasher.update(raw[start + embeddings.nbytes :])
        found = f"{CHECKSUM_ALGORITHM}:{hasher.hexdigest()}"
        if found != expected:
            raise _mismatch(file, expected, found, file.parent)
    peaks = np.concatenate(peaks or [np.zeros(0, dtype=embeddings.dtype)])
    check_row_peaks(peaks, embeddings.shape[1], where)


def write_table(df: pd.DataFrame, path: str | os.PathLike, force: bool = False) -> Path:
    """Write a results table atomically as CSV or Parquet, chosen by the file suffix."""
    path = check_table_path(path)
    with atomic_path(path, force) as tmp:
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
        try:
            return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",")
        except pd.errors.EmptyDataError as err:
            raise ValueError(f"{path}: an empty file (no header, no rows)") from err
        except pd.errors.ParserError as err:
            raise ValueError(f"{path}: not a readable {path.suffix} table ({err})") from err
    raise ValueError(f"{path}: tables are .csv, .tsv or .parquet, not '{path.suffix}'")


def progress_bar(iterable=None, **kwargs):
    """tqdm on stderr; in a log file (not a terminal) it writes a line every 30 s, not every
    0.1 s, so rule logs stay readable."""

    from tqdm.auto import tqdm

    if not sys.stderr.isatty():
        kwargs.setdefault("mininterval", 30.0)
    return tqdm(iterable, file=sys.stderr, **kwargs)
