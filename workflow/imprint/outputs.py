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


# Suffixes of other file formats: an embedding set (a folder) named so is certainly a slip
# (`--out x.csv`), while a dot in a model's name is common (vit_base_patch16_224.augreg_in21k).
_FILE_SUFFIXES = frozenset(
    "csv tsv parquet feather arrow json jsonl yaml yml toml ini txt md rst tex log html xml "
    "npy mat h5 hdf5 nc zarr pt pth ckpt bin safetensors onnx pkl pickle joblib db sqlite "
    "zip gz bz2 xz zst tar tgz 7z rar pdf png svg jpg jpeg gif tif tiff bmp webp mp4 "
    "ipynb py sh xlsx xls docx pptx".split()
)
# What Snakemake or an OS leaves in a folder by itself (not a user's data): the timestamp of
# the directory() outputs of older runs, macOS's and NFS's bookkeeping.
_BOOKKEEPING = (".snakemake_timestamp", ".DS_Store", "._", ".nfs")
# The mark every figure this project draws carries in its metadata (write_outputs).
FIGURE_CREATOR = "imprint-workflow"


@dataclass(frozen=True)
class OutputFormat:
    """What a command writes: a name for messages, the suffixes it may carry ("" for a
    folder), and how an earlier output of this kind is recognised (from the path and the
    command's signature: see check_output)."""

    name: str  # with its article, as messages use it
    suffixes: tuple[str, ...]
    recognise: Callable[[Path, tuple[str, ...]], bool]


class OutputError(ValueError):
    """An output path that would replace what the command did not write (or reads)."""


def _header(path: Path) -> list[str] | None:
    """A CSV's or Parquet's column names; None if it is neither."""
    import csv

    try:
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        with open(path, newline="", encoding="utf-8") as fh:
            return next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, ValueError, csv.Error):
        return None


def _is_table(path: Path, columns: tuple[str, ...]) -> bool:
    """A CSV or Parquet table whose header holds `columns` (the command's own columns, all of
    them) and none of its "!columns"."""
    header = _header(path)
    return bool(header) and _holds(set(header), columns)


def is_pvalue_table(path: Path, _: tuple[str, ...] = ()) -> bool:
    """The p-value matrix `imprint cd` writes: its columns after the first are the values of
    its first column (method × method), whichever column names the methods."""
    import pandas as pd

    header = _header(path)
    if not header or len(header) < 3:
        return False
    try:
        first = pd.read_csv(path, usecols=[0]).iloc[:, 0].astype(str).tolist()
    except (OSError, ValueError, pd.errors.ParserError):
        return False
    return first == header[1:]


def _is_json(path: Path, keys: tuple[str, ...]) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and _holds(set(data), keys)


def _holds(names: set, signature: tuple[str, ...]) -> bool:
    """`names` hold each name of `signature` and none of its "!name"s."""
    return all((n[1:] not in names) if n.startswith("!") else (n in names) for n in signature)


def _is_embedding_set(path: Path, signature: tuple[str, ...] = ()) -> bool:
    """An embedding set save_embeddings wrote: a folder holding only its files, with its
    meta.json carrying the checksums it records (or, before a rerun, none of the three files
    Snakemake removes: what is left is its ids.npy and bookkeeping), or an .npz whose `meta`
    records n and dim. `signature`: keys its metadata must hold too (concat's "concat")."""
    from imprint.io import EMBEDDING_FILES, IDS_FILE, META_FILE

    if path.is_dir():
        names = {p.name for p in path.iterdir() if not p.name.startswith(_BOOKKEEPING)}
        if not names <= {*EMBEDDING_FILES, IDS_FILE}:
            return False
        if META_FILE not in names:
            return names <= {IDS_FILE}
        meta = _json_object((path / META_FILE).read_bytes())
        return meta is not None and _holds(set(meta), ("checksums", *signature))
    try:
        with zipfile.ZipFile(path) as z:
            if not {"embeddings.npy", "labels.npy", "meta.npy"} <= set(z.namelist()):
                return False
        import numpy as np

        with np.load(path, allow_pickle=False) as npz:
            meta = _json_object(str(npz["meta"]).encode())
    except (OSError, ValueError, zipfile.BadZipFile):
        return False
    return meta is not None and _holds(set(meta), ("n", "dim", *signature))


def _json_object(raw: bytes) -> dict | None:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _drawn(magic: bytes):
    """A figure this project drew: `magic` first, and FIGURE_CREATOR in its metadata (a PDF's
    Creator, a PNG's text chunk), which write_outputs puts there and others' figures lack."""

    def recognise(path: Path, _: tuple[str, ...]) -> bool:
        try:
            with open(path, "rb") as fh:
                head = fh.read(1 << 16)
                fh.seek(max(0, path.stat().st_size - (1 << 16)))
                tail = fh.read()
        except OSError:
            return False
        return head.startswith(magic) and FIGURE_CREATOR.encode() in head + tail

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
    "pvalues": OutputFormat("a p-value table", (".csv", ".parquet"), is_pvalue_table),
    "json": OutputFormat("a JSON file", (".json",), _is_json),
    "embeddings": OutputFormat("an embedding set", ("", ".npz"), _is_embedding_set),
    "pdf": OutputFormat("a PDF figure", (".pdf",), _drawn(b"%PDF")),
    "png": OutputFormat("a PNG figure", (".png",), _drawn(b"\x89PNG")),
    "text": OutputFormat("a text file", (".txt", ".md", ".tex"), _is_text),
}


def _suffix_allowed(path: Path, fmt: OutputFormat) -> bool:
    if path.suffix in fmt.suffixes:
        return True
    return "" in fmt.suffixes and path.suffix.lower().lstrip(".") not in _FILE_SUFFIXES


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or os.path.samefile(a, b)
    except OSError:
        return False


def _inside(inner: Path, outer: Path) -> bool:
    """`inner` lies below `outer`, as resolved or as written (a symbolic link inside a folder
    is in it, wherever it points)."""
    try:
        pairs = [(inner.resolve(), outer.resolve()), (_absolute(inner), _absolute(outer))]
    except OSError:
        return False
    return any(i != o and i.is_relative_to(o) for i, o in pairs)


def _absolute(path: Path) -> Path:
    return Path(os.path.normpath(os.path.abspath(path)))


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
    if Path.cwd() == _absolute(path) or Path.cwd().is_relative_to(_absolute(path)):
        raise OutputError(f"{flag} {path} is the current folder or holds it: give a path below it")
    try:
        check_writable(path)
    except ValueError as err:
        raise OutputError(f"{flag} {err}") from None
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
        if "" in fmt.suffixes and _is_embedding_set(path, signature):
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
    out, train, test, grid, groups: list[dict], force: bool, incremental: bool = False, text=None
) -> None:
    """A results table may go to `out` (check_output): a new path or an earlier results
    table, none of the files it is computed from."""
    from imprint.engine.evaluate import RESULT_COLUMNS
    from imprint.engine.incremental import INCREMENTAL_COLUMNS

    inputs = {"--train": train, "--test": test, "--grid": grid}
    inputs["--mapping"] = [g.get("mapping") for g in groups]
    inputs["--text-proxies"] = text
    # Every column such a table has; an incremental one's, which an ordinary one lacks.
    own = (*INCREMENTAL_COLUMNS,) if incremental else ("!session",)
    check_output(out, "table", inputs, force, signature=(*RESULT_COLUMNS, *own))


def _check_not_an_input(path: Path, inputs: dict, flag: str) -> None:
    """Refuse an output that is an input, lies inside one or holds one (no --force: writing
    there destroys what the command is reading)."""
    for what, source in inputs.items():
        sources = source if isinstance(source, list | tuple) else [source]
        for src in sources:
            if not isinstance(src, str | os.PathLike) or not Path(src).exists():
                continue  # a mapping given as a dict, a packaged grid (paper:...)
            src = Path(src)
            if same_file(path, src):
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
    if len(has) > 4:
        has = [*has[:4], f"… ({len(has)} in all)"]
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


def write_outputs(made: dict, outputs: dict, force: bool = False) -> None:
    """Write each output, atomically, from what was made under its name: a table as CSV or
    Parquet, a text as it is; a Figure made as X is written to outputs X_pdf and X_png (200 dpi).
    A made "message" is logged. force: as atomic_path takes it."""
    import logging

    import pandas as pd

    from imprint.io import write_table  # io writes through this module

    if "message" in made:
        logging.getLogger("imprint").info("%s", made["message"])
    for name, path in outputs.items():
        stem, _, ext = name.rpartition("_")
        if name in made:
            thing = made[name]
        elif ext in ("pdf", "png") and stem in made:
            thing = made[stem]
        else:
            raise ValueError(f"output '{name}' ({path}): nothing was made under that name")
        if isinstance(thing, pd.DataFrame):
            write_table(thing, path, force)
        elif isinstance(thing, str):
            with atomic_path(path, force) as tmp:
                tmp.write_text(thing)
        else:  # a matplotlib Figure
            with atomic_path(path, force) as tmp:
                mark = {"Creator": FIGURE_CREATOR}  # how check_output knows a figure of ours
                thing.savefig(
                    tmp, format=Path(path).suffix[1:], dpi=200, bbox_inches="tight", metadata=mark
                )
