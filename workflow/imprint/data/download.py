"""Downloads that either complete with a verified file or leave nothing behind."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from torchvision.datasets.utils import calculate_md5, download_url


def _missing_dirs(path: Path) -> list[Path]:
    """The ancestors of `path` (itself included) that do not exist yet, outermost first."""
    missing = []
    for p in [path, *path.parents]:
        if p.exists():
            break
        missing.append(p)
    return missing[::-1]


def _remove_empty(dirs: Sequence[Path]) -> None:
    # Undo only directories this call created, and only while they are still empty, so a
    # failed download never removes anything that was there before.
    for d in reversed(dirs):
        try:
            d.rmdir()
        except OSError:
            break


def fetch_file(url: str, dest: str | os.PathLike, md5: str | None = None) -> Path:
    """Download `url` to `dest` and check its md5; on any failure raise and leave no file.

    The bytes go to a temporary directory next to `dest` (same filesystem), so the final
    rename is atomic and a dead server, an HTTP error or a checksum mismatch cannot leave a
    partial or corrupt file under `dest`'s name. An existing `dest` with the right md5 is kept.
    """
    dest = Path(dest)
    if dest.is_file() and (md5 is None or calculate_md5(dest) == md5):
        return dest
    created = _missing_dirs(dest.parent)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
    ok = False
    try:
        try:
            # torchvision's downloader: same User-Agent, redirects and progress bar as the
            # torchvision datasets; md5=None because we check (and report) the sum ourselves.
            download_url(url, str(tmp), filename=dest.name, md5=None)
        except Exception as err:
            raise RuntimeError(f"downloading {url} failed: {err}") from err
        got = calculate_md5(tmp / dest.name)
        if md5 is not None and got != md5:
            raise RuntimeError(
                f"checksum mismatch for {url}: expected md5 {md5}, got {got} "
                "(the server sent a different or truncated file)"
            )
        os.replace(tmp / dest.name, dest)
        ok = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not ok:
            _remove_empty(created)
    return dest


def extract_member(archive: str | os.PathLike, member: str, dest: str | os.PathLike) -> Path:
    """Copy the regular file named `member` (matched by base name) out of a tar archive.

    Only that one file is read, so an archive cannot write anywhere else; the copy is renamed
    into place only when complete.
    """
    archive, dest = Path(archive), Path(dest)
    with tarfile.open(archive) as tar:
        found = [m for m in tar.getmembers() if m.isfile() and Path(m.name).name == member]
        if not found:
            names = [m.name for m in tar.getmembers()][:10]
            raise RuntimeError(f"{archive}: no file named {member} inside (found {names})")
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as out, tar.extractfile(found[0]) as src:
                shutil.copyfileobj(src, out, length=1 << 20)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    return dest


def staged_download(
    dataset: str,
    root: str | os.PathLike,
    fetch: Callable[[Path], object],
    urls: Sequence[str],
    manual_dir: str | os.PathLike | None = None,
) -> None:
    """Run a downloader into a scratch directory under `root`, then move `<scratch>/<dataset>`
    into `<root>/<dataset>`.

    `fetch(scratch)` must put everything of `dataset` under `scratch/dataset` (torchvision's
    dataset classes with `download=True` do, given the right root). Files already in
    `<root>/<dataset>` are linked into the scratch copy first, so archives placed there by hand
    are verified and unpacked instead of fetched again. If `fetch` raises, the scratch directory
    is removed and a RuntimeError names the dataset, the URLs and where to put the files by hand
    (`manual_dir`, default `<root>/<dataset>`).
    """
    root = Path(root)
    manual_dir = Path(manual_dir) if manual_dir is not None else root / dataset
    created = _missing_dirs(root)
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{dataset}.", suffix=".download", dir=root))
    ok = False
    try:
        _link_tree(root / dataset, scratch / dataset)
        try:
            fetch(scratch)
        except Exception as err:
            raise RuntimeError(
                f"could not download {dataset} from {', '.join(urls)}: {err}\n"
                f"Check the network, or download these files by hand into {manual_dir} "
                "and run again with download enabled (files found there are checked, not fetched)."
            ) from err
        _merge_tree(scratch / dataset, root / dataset)
        ok = True
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if not ok:
            _remove_empty(created)


def _link_tree(src: Path, dst: Path) -> None:
    for path in sorted(src.rglob("*")) if src.is_dir() else []:
        if path.is_file():
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target)
            except OSError:  # no hard links on this filesystem
                shutil.copy2(path, target)


def _merge_tree(src: Path, dst: Path) -> None:
    # File by file so a dataset folder that already holds the other split keeps it.
    for path in sorted(src.rglob("*")):
        if path.is_file():
            target = dst / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
