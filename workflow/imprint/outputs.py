"""Where a command may write, and how: the one output rule every command and script follows
(check_output), atomic writes (atomic_path) and strict JSON.

The rule: an output path is a new path or an earlier output of the same kind, never a folder
holding other things, never one of the command's inputs nor inside one, never a path whose
suffix says another format; `force` (the commands' --force) replaces an existing path on
purpose. It is checked before any work, so a careless --out costs a second, not a file; and
atomic_path, which every writer uses, never removes a folder that is not an embedding set
unless forced.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


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
def atomic_path(path: str | os.PathLike, force: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto `path` only if the block succeeds.

    Works for files and directories, so a crash never leaves a half-written output behind
    (nor, with exit_cleanly_on_sigterm, a temporary one after SIGTERM). A temporary sibling
    that SIGKILL or a power cut left behind is removed by the next write of the same path
    (one writer per path: Snakemake never runs two jobs for one output). What is at `path`
    is replaced only if it is a file, or an embedding set replaced by a folder, unless
    `force`: a folder of other things is never removed by accident (check_output says why
    before the work).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkdtemp's random part is 8 characters: `.emb.*.tmp` would also match the temporary of
    # a sibling output `emb.npz` (`.emb.npz.k3j9x0ab.tmp`), which another writer may own.
    for stale in path.parent.glob(f".{glob.escape(path.name)}.{'[a-z0-9_]' * 8}.tmp"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        _make_way(path, target, force)
        os.replace(target, path)
    except OSError as err:  # a full disk, a quota: name the output, not its temporary sibling
        reason = err.strerror or str(err)
        if err.errno is None:  # numpy's short write ("N requested and M written") has none
            free = shutil.disk_usage(path.parent).free
            if free < 1 << 20:
                reason = f"No space left on device ({reason}; {free:,} bytes free)"
        raise OSError(err.errno, reason, str(path)) from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _make_way(path: Path, target: Path, force: bool) -> None:
    """Remove what os.replace cannot replace at `path`, if it may go (see atomic_path)."""
    if path.is_dir() and not path.is_symlink():
        if not (force or (target.is_dir() and _is_embedding_set(path))):
            raise OutputError(
                f"{path} is a folder holding other things than an embedding set; it is kept "
                "(give a new path, or --force to replace it on purpose)"
            )
        shutil.rmtree(path)
    elif target.is_dir() and (path.exists() or path.is_symlink()):
        if not force:
            raise OutputError(
                f"{path} is a file or a symbolic link; an embedding set is a folder: it is kept "
                "(give a new path, or --force to replace it on purpose)"
            )
        path.unlink()


def check_table_path(path: str | os.PathLike) -> Path:
    """`path` if write_table can write it (.csv or .parquet); call before long work."""
    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise ValueError(f"{path}: results tables are .csv or .parquet, not '{path.suffix}'")
    check_writable(path)
    return path


def check_writable(path: str | os.PathLike) -> Path:
    """`path` if its folder exists or can be made, and is writable: checked before long work,
    so a typo or a read-only results folder fails in a second, not after the run."""
    path = Path(path)
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"{path}: cannot be written: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{path}: cannot be written: {folder} is not writable (Permission denied)")
    return path


# Suffixes of files that are not embedding sets: an embedding set named so would be a folder
# called x.csv, which is certainly not what was meant.
_FILE_SUFFIXES = (
    ".csv",
    ".tsv",
    ".parquet",
    ".json",
    ".yaml",
    ".yml",
    ".txt",
    ".md",
    ".tex",
    ".npy",
    ".pdf",
    ".png",
    ".svg",
    ".pt",
    ".pth",
    ".pkl",
    ".zip",
    ".gz",
)


@dataclass(frozen=True)
class OutputFormat:
    """What a command writes: a name for messages, the suffixes it may carry ("" for a
    folder), and how an earlier output of this kind is recognised."""

    name: str  # with its article, as messages use it
    suffixes: tuple[str, ...]
    recognise: Callable[[Path, tuple[str, ...]], bool]


class OutputError(ValueError):
    """An output path that would replace what the command did not write (or reads)."""


def _is_table(path: Path, columns: tuple[str, ...]) -> bool:
    """A CSV or Parquet table whose header holds `columns` (the kind's own columns)."""
    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            header = set(pq.read_schema(path).names)
        else:
            import csv

            with open(path, newline="", encoding="utf-8") as fh:
                header = set(next(csv.reader(fh), []))
    except (OSError, UnicodeDecodeError, ValueError, StopIteration):  # csv.Error is one
        return False
    return bool(header) and _holds(header, columns)


def _is_json(path: Path, keys: tuple[str, ...]) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and _holds(set(data), keys)


def _holds(names: set, signature: tuple[str, ...]) -> bool:
    """`names` hold each name of `signature` and none of its "!name"s."""
    return all((n[1:] not in names) if n.startswith("!") else (n in names) for n in signature)


def _is_embedding_set(path: Path, _: tuple[str, ...] = ()) -> bool:
    """A folder holding only save_embeddings' files (some may be gone: Snakemake removes a
    rule's outputs before rerunning it), or an .npz of its arrays."""
    from imprint.io import EMBEDDING_FILES, IDS_FILE  # io writes through this module

    if path.is_dir():
        # Hidden files are bookkeeping, not a user's data: Snakemake's .snakemake_timestamp
        # (in folders of older runs, when these were directory() outputs), .DS_Store.
        names = {p.name for p in path.iterdir() if not (p.name.startswith(".") and p.is_file())}
        return names <= {*EMBEDDING_FILES, IDS_FILE}
    try:
        with zipfile.ZipFile(path) as z:
            return {"embeddings.npy", "labels.npy"} <= set(z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def _drawn(magic: bytes):
    """A figure file this project drew: `magic` first, and matplotlib named in its metadata
    (a PDF's Producer, a PNG's Software), which a user's own figure rarely carries."""

    def recognise(path: Path, _: tuple[str, ...]) -> bool:
        try:
            with open(path, "rb") as fh:
                head = fh.read(1 << 16)
                fh.seek(max(0, path.stat().st_size - (1 << 16)))
                tail = fh.read()
        except OSError:
            return False
        return head.startswith(magic) and b"matplotlib" in (head + tail).lower()

    return recognise


def _is_text(path: Path, signature: tuple[str, ...]) -> bool:
    """A UTF-8 text file whose first line holds each of `signature`."""
    try:
        first = path.read_text(encoding="utf-8").partition("\n")[0]
    except (OSError, UnicodeDecodeError):
        return False
    return all(s in first for s in signature)


OUTPUT_FORMATS = {
    "table": OutputFormat("a results table", (".csv", ".parquet"), _is_table),
    "json": OutputFormat("a JSON file", (".json",), _is_json),
    "embeddings": OutputFormat("an embedding set", ("", ".npz"), _is_embedding_set),
    "pdf": OutputFormat("a PDF figure", (".pdf",), _drawn(b"%PDF")),
    "png": OutputFormat("a PNG figure", (".png",), _drawn(b"\x89PNG")),
    "text": OutputFormat("a text file", (".txt", ".md", ".tex"), _is_text),
}


def _suffix_allowed(path: Path, fmt: OutputFormat) -> bool:
    if path.suffix in fmt.suffixes:
        return True
    # A folder may carry a dot in its name (vit_b.16), just not a file format's suffix.
    return "" in fmt.suffixes and path.suffix.lower() not in _FILE_SUFFIXES


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or os.path.samefile(a, b)
    except OSError:
        return False


def _inside(inner: Path, outer: Path) -> bool:
    try:
        return (
            inner.resolve().is_relative_to(outer.resolve()) and inner.resolve() != outer.resolve()
        )
    except OSError:
        return False


def check_output(
    path: str | os.PathLike,
    kind: str,
    inputs: dict | None = None,
    force: bool = False,
    flag: str = "--out",
    signature: tuple[str, ...] = (),
) -> Path:
    """`path` if a command may write its `kind` of output there (OUTPUT_FORMATS); else an
    OutputError naming the path, the flag and what is allowed, before any work.

    inputs: {what: path} of everything the command reads (e.g. {"--train": ...}); the output
    is none of them (by resolved path and by inode), lies inside none of them and holds none
    of them — even with `force`. signature: what an earlier output of this command holds
    (columns of a table, keys of a JSON; "!name": must not hold it, telling apart kinds that
    share columns): an existing file without it is not one, and is kept. force: replace an
    existing path of another kind (a folder, a file, a symbolic link) on purpose. The suffix
    must always fit the format, and the folder must be writable.
    """
    fmt = OUTPUT_FORMATS[kind]
    path = Path(path)
    _check_not_an_input(path, inputs or {}, flag)
    if not _suffix_allowed(path, fmt):
        allowed = " or ".join("a folder" if s == "" else s for s in fmt.suffixes)
        raise OutputError(f"{flag} {path}: {fmt.name} is {allowed}, not '{path.suffix}'")
    check_writable(path)
    if force or not (path.exists() or path.is_symlink()):
        return path
    replace = (
        "writing there would replace it: give a new path (or --force to replace it on purpose)"
    )
    if path.is_symlink():
        raise OutputError(
            f"{flag} {path} is a symbolic link (to {os.readlink(path)}); {replace.replace('it', 'the link', 1)}"
        )
    if path.is_dir():
        if "" in fmt.suffixes and _is_embedding_set(path):
            return path  # an earlier embedding set: replaced as a whole
        held = sorted(p.name for p in path.iterdir())
        what = (
            f"a folder holding {len(held)} other thing(s) ({', '.join(held[:3])}"
            f"{', …' if len(held) > 3 else ''})"
            if held
            else "an empty folder"
        )
        raise OutputError(f"{flag} {path} is {what}, not {fmt.name} this command wrote; {replace}")
    if "" in fmt.suffixes and path.suffix != ".npz" or not fmt.recognise(path, signature):
        raise OutputError(
            f"{flag} {path} exists and is not {fmt.name} this command wrote"
            f"{_described(signature)}; {replace}"
        )
    return path


def check_results_out(
    out, train, test, grid, groups: list[dict], force: bool, incremental: bool = False
) -> None:
    """A results table may go to `out` (check_output): a new path or an earlier results
    table, none of the files it is computed from."""
    inputs = {"--train": train, "--test": test, "--grid": grid}
    inputs["--mapping"] = [g.get("mapping") for g in groups]
    # An incremental table has a session column; an ordinary one does not.
    session = "session" if incremental else "!session"
    check_output(out, "table", inputs, force, signature=("config_id", "accuracy", session))


def _check_not_an_input(path: Path, inputs: dict, flag: str) -> None:
    """Refuse an output that is an input, lies inside one or holds one (no --force: writing
    there destroys what the command is reading)."""
    for what, source in inputs.items():
        sources = source if isinstance(source, list | tuple) else [source]
        for src in sources:
            if not isinstance(src, str | os.PathLike) or not Path(src).exists():
                continue  # a mapping given as a dict, a packaged grid (paper:...)
            src = Path(src)
            if _same_file(path, src):
                raise OutputError(
                    f"{flag} {path} is one of this command's inputs ({what} {src}); writing "
                    "there would destroy it: give another path"
                )
            if src.is_dir() and _inside(path, src):
                raise OutputError(
                    f"{flag} {path} lies inside {src}, one of this command's inputs ({what}); "
                    "give a path outside it"
                )
            if path.is_dir() and _inside(src, path):
                raise OutputError(
                    f"{flag} {path} is a folder holding {src}, one of this command's inputs "
                    f"({what}); give another path"
                )


def _described(signature: tuple[str, ...]) -> str:
    has = [s for s in signature if not s.startswith("!")]
    lacks = [s[1:] for s in signature if s.startswith("!")]
    parts = ([f"with {', '.join(has)}"] if has else []) + (
        [f"without {', '.join(lacks)}"] if lacks else []
    )
    return f" ({' and '.join(parts)})" if parts else ""


def finite_json(data: dict, why: str = "") -> dict:
    """`data` with each non-finite number (NaN, inf; also inside lists) as None, and one
    warning naming those keys (and `why`, where the caller knows the reason): strict JSON
    (other readers refuse NaN), and nothing undefined passes silently."""
    import math
    import warnings

    undefined: list[str] = []

    def finite(value, key):
        if isinstance(value, float) and not math.isfinite(value):
            undefined.append(key)
            return None
        if isinstance(value, list):
            return [finite(v, key) for v in value]
        return value

    cleaned = {k: finite(v, k) for k, v in data.items()}
    if undefined:
        keys = ", ".join(dict.fromkeys(undefined))
        warnings.warn(
            f"undefined on these data{f' ({why})' if why else ''}, written as null: {keys}",
            stacklevel=3,
        )
    return cleaned


def write_json(data: dict, path: str | os.PathLike, force: bool = False) -> Path:
    """Write `data` atomically as strict JSON: no NaN or inf (finite_json replaces them first;
    json.dumps refuses any left)."""
    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False)
    path = Path(path)
    with atomic_path(path, force) as tmp:
        tmp.write_text(text + "\n")
    return path
