"""The workflow's cached embedding sets, checked: `imprint verify` and `snakemake verify_caches`
walk folders for embedding sets, verify each (verify_embedding_set) and report every
corrupted one with the Snakemake command that rebuilds it and what was built from it."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from imprint.io import (
    CHECKSUM_ALGORITHM,
    EMBEDDINGS_FILE,
    IDS_FILE,
    LABELS_FILE,
    META_FILE,
    ChecksumError,
    EmbeddingFileError,
    expected_checksums,
    file_checksum,
    parse_meta,
    progress_bar,
    rebuild_advice,
    rebuild_command,
)

# `imprint verify` and the workflow's `verify_caches` target re-hash every array file of an
# embedding set against the checksums in its meta.json (the walk over folders and the report:
# planning/caches.py). Corruption that leaves a file's modification time alone (bit rot, a bad
# copy) is invisible to Snakemake, which compares times, until a job reads the file.


@dataclass
class SetCheck:
    """What verify_embedding_set found in one embedding directory."""

    directory: Path
    problems: list[str] = field(default_factory=list)  # '<file>: what is wrong', one each
    unverifiable: str | None = None  # why its arrays cannot be verified (no checksums)
    files: int = 0  # array files hashed
    nbytes: int = 0  # and their bytes


def verify_embedding_set(
    directory: str | os.PathLike, advance: Callable[[int], None] | None = None
) -> SetCheck:
    """Re-hash each array file whose checksum meta.json lists (embeddings.npy, labels.npy and
    ids.npy where listed), then compare its .npy header with meta's n × dim. Each problem is
    one line naming the file; none: the set is verified. `advance(nbytes)` follows each file."""
    directory = Path(directory)
    check = SetCheck(directory)
    meta_file = directory / META_FILE
    if not meta_file.is_file():
        check.problems.append(f"{meta_file}: missing (it holds the set's checksums and shape)")
        return check
    try:
        meta = parse_meta(meta_file.read_text(encoding="utf-8", errors="replace"), meta_file)
    except EmbeddingFileError as err:
        check.problems.append(str(err))
        return check
    if meta.get("checksums") is None:
        check.unverifiable = (
            f"{directory}: no checksums in {META_FILE} (written by hand or before they were "
            "added), so its arrays cannot be verified"
        )
        return check
    try:
        expected = expected_checksums(meta, directory)
    except ChecksumError:
        check.problems.append(
            f"{meta_file}: 'checksums' must map {EMBEDDINGS_FILE} and {LABELS_FILE} to "
            f"'{CHECKSUM_ALGORITHM}:<hex>' strings, got {meta['checksums']!r}"
        )
        return check
    n, dim = meta.get("n"), meta.get("dim")
    shapes = {EMBEDDINGS_FILE: (n, dim), LABELS_FILE: (n,), IDS_FILE: (n,)}
    for name, shape in shapes.items():
        if name not in expected:
            continue
        file = directory / name
        if not file.is_file():
            check.problems.append(f"{file}: missing ({META_FILE} lists its checksum)")
            continue
        found = file_checksum(file)
        size = file.stat().st_size
        check.files, check.nbytes = check.files + 1, check.nbytes + size
        if advance is not None:
            advance(size)
        if found != expected[name]:
            check.problems.append(
                f"{file}: checksum mismatch ({META_FILE} says {expected[name]}, the file hashes "
                f"to {found})"
            )
        elif None not in shape and (problem := _header_problem(file, shape)):
            check.problems.append(problem)
    return check


def _header_problem(file: Path, shape: tuple) -> str | None:
    """How a .npy file's header disagrees with the shape meta.json records; None if it agrees."""
    try:
        found = np.load(file, mmap_mode="r", allow_pickle=False).shape  # the header only
    except (ValueError, OSError) as err:
        return f"{file}: not a readable .npy array ({err})"
    if tuple(found) == tuple(shape):
        return None
    if len(shape) == 2:
        held = " × ".join(str(s) for s in found)
        return f"{file}: holds {held} values but {META_FILE} records {shape[0]} × {shape[1]}"
    return f"{file}: holds shape {tuple(found)} but {META_FILE} records {shape[0]} rows"


def find_embedding_sets(root: str | os.PathLike) -> list[Path]:
    """The embedding directories at or below `root` (folders holding any of meta.json,
    embeddings.npy, labels.npy: a set missing some is found, and reported), in sorted order;
    hidden folders (atomic_path's temporaries, .snakemake) are skipped."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(2, "no such folder", str(root))
    if not root.is_dir():
        raise ValueError(
            f"{root}: not a folder; give folders holding embedding sets (a set is a folder "
            f"with {META_FILE} and {EMBEDDINGS_FILE})"
        )
    found = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(s for s in subfolders if not s.startswith("."))
        if {META_FILE, EMBEDDINGS_FILE, LABELS_FILE} & set(files):
            found.append(Path(folder))
    return found


@dataclass
class VerifyReport:
    """verify_embedding_sets' findings: one SetCheck per embedding set found."""

    checks: list[SetCheck]

    @property
    def corrupted(self) -> list[SetCheck]:
        return [c for c in self.checks if c.problems]

    def problem_lines(self) -> list[str]:
        """One line per corrupted set: what is wrong with which file, and how to rebuild it."""
        return [f"{'; '.join(c.problems)}; {rebuild_advice(c.directory)}" for c in self.corrupted]

    def warning_lines(self) -> list[str]:
        """One line per set without checksums (not corrupted, but not verifiable)."""
        return [c.unverifiable for c in self.checks if c.unverifiable]

    def summary(self) -> str:
        files = sum(c.files for c in self.checks)
        size = _size_text(sum(c.nbytes for c in self.checks))
        bad = self.corrupted
        if not bad:
            verified = sum(not c.unverifiable for c in self.checks)
            unverifiable = len(self.checks) - verified
            return (
                f"{_count(verified, 'embedding set')} verified, {_count(files, 'file')}, {size}"
                + (f"; {unverifiable} without checksums (unverifiable)" if unverifiable else "")
            )
        text = (
            f"{len(bad)} of {_count(len(self.checks), 'embedding set')} corrupted "
            f"({_count(files, 'file')}, {size} read)"
        )
        command = rebuild_command(*(c.directory for c in bad))
        if command is not None and len(bad) > 1:
            text += f"; rebuild them all with: {command}"
        return text


def verify_embedding_sets(roots, progress: bool = True) -> VerifyReport:
    """verify_embedding_set on every embedding set below each of `roots` (each set once), with
    a progress bar over the bytes to hash (shown only when it takes more than 2 s)."""
    sets, seen = [], set()
    for root in roots:
        for directory in find_embedding_sets(root):
            if directory.resolve() not in seen:
                seen.add(directory.resolve())
                sets.append(directory)
    total = sum(
        (d / name).stat().st_size
        for d in sets
        for name in (EMBEDDINGS_FILE, LABELS_FILE, IDS_FILE)
        if (d / name).is_file()
    )
    bar = progress_bar(
        total=total, unit="B", unit_scale=True, desc="verifying", delay=2, disable=not progress
    )
    with bar:
        return VerifyReport([verify_embedding_set(d, bar.update) for d in sets])


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _size_text(nbytes: int) -> str:
    return f"{nbytes / 1e9:.2f} GB" if nbytes >= 1e7 else f"{nbytes / 1e6:.1f} MB"
