"""`imprint verify`: every cached embedding set's files re-hashed against its meta.json, one line
per corrupted set with the command that rebuilds it; and a job's one-line ending on a corrupted
cache (workflow/scripts/_common.py). The real workflow's drill: tests/workflow/test_drills.py."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from _snakemake import REPO

from imprint import io
from imprint.cli.main import main
from imprint.io import ChecksumError, EmbeddingFileError, load_embeddings, save_embeddings
from imprint.planning import caches, paths
from imprint.planning.caches import rebuild_command, verify_embedding_set

TRAIN = "results/embeddings/digits/pixels/train"
TEST = "results/embeddings/digits/pixels/test"
FORCERUN = "snakemake --cores all --forcerun"


def _set(path: Path, n: int = 12, dim: int = 4, ids: bool = False) -> Path:
    rng = np.random.default_rng(n + dim)
    x, y = rng.standard_normal((n, dim)).astype(np.float32), np.arange(n) % 3
    return save_embeddings(path, x, y, {"backbone": "pixels"}, ids=np.arange(n) if ids else None)


def _flip(file: Path, keep_time: bool = True) -> None:
    """Change one byte in the middle of `file`, its size and (by default) its mtime unchanged."""
    st = file.stat()
    raw = bytearray(file.read_bytes())
    raw[len(raw) // 2 + 3] ^= 0x10
    file.write_bytes(bytes(raw))
    if keep_time:
        os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns))


def _meta(directory: Path, edit) -> None:
    meta = json.loads((directory / "meta.json").read_text())
    edit(meta)
    (directory / "meta.json").write_text(json.dumps(meta))


@pytest.fixture
def workflow(tmp_path, monkeypatch):
    """A workflow folder (the current directory) with two cached sets, one with image ids."""
    _set(tmp_path / TRAIN, ids=True)
    _set(tmp_path / TEST, n=6)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _verify(capsys, *args) -> tuple[int, list[str], list[str]]:
    try:
        rc = main(["verify", "-q", *args])
    except SystemExit as stop:
        rc = stop.code
    out, err = capsys.readouterr()
    return rc, out.splitlines(), err.splitlines()


def test_every_set_verified_with_a_summary(workflow, capsys):
    rc, out, err = _verify(capsys)  # default: results
    assert rc == 0 and err == []
    size = sum(f.stat().st_size for f in (workflow / "results").rglob("*.npy")) / 1e6
    assert out == [f"2 embedding sets verified, 5 files, {size:.1f} MB"]


def test_a_corrupted_file_is_one_line_with_the_command_that_rebuilds_it(workflow, capsys):
    _flip(workflow / TRAIN / "embeddings.npy")
    rc, out, err = _verify(capsys)
    assert rc == 1 and err == [], err
    assert len(out) == 2, out
    assert out[0].startswith(f"{TRAIN}/embeddings.npy: checksum mismatch (meta.json says xxh3_128:")
    assert out[0].endswith(
        f"; rebuild it and what was built from it with: {FORCERUN} {TRAIN}/embeddings.npy"
    )
    assert out[1].startswith("1 of 2 embedding sets corrupted (5 files,")
    # Only the set is named: the other passes.
    rc, out, _ = _verify(capsys, TEST)
    assert rc == 0 and out[0].startswith("1 embedding set verified, 2 files")


def test_each_kind_of_damage_is_named(workflow, capsys):
    _flip(workflow / TEST / "labels.npy")
    (workflow / TRAIN / "ids.npy").unlink()
    rc, out, _ = _verify(capsys)
    assert rc == 1
    assert out[0].startswith(f"{TEST}/labels.npy: checksum mismatch")
    assert out[1].startswith(f"{TRAIN}/ids.npy: missing (meta.json lists its checksum)")
    # Two sets: a command for all of them at the end.
    assert out[2].endswith(
        f"rebuild them all with: {FORCERUN} {TEST}/embeddings.npy {TRAIN}/embeddings.npy"
    )
    _set(workflow / TEST, n=6)
    _set(workflow / TRAIN, ids=True)
    _meta(workflow / TRAIN, lambda m: m.update(n=13))  # meta.json edited: not hashed itself
    _meta(workflow / TEST, lambda m: m["checksums"].update({"embeddings.npy": 5}))
    rc, out, _ = _verify(capsys)
    assert rc == 1
    assert out[0].startswith(f"{TEST}/meta.json: 'checksums' must map embeddings.npy and")
    assert out[1].startswith(
        f"{TRAIN}/embeddings.npy: holds 12 × 4 values but meta.json records 13 × 4; "
        f"{TRAIN}/labels.npy: holds shape (12,) but meta.json records 13 rows; "
        f"{TRAIN}/ids.npy: holds shape (12,) but meta.json records 13 rows; rebuild it"
    )
    (workflow / TRAIN / "meta.json").write_text("{n: 3")
    rc, out, _ = _verify(capsys, TRAIN)
    assert rc == 1 and out[0].startswith(f"{TRAIN}/meta.json: metadata is not valid JSON")


def test_a_set_without_checksums_is_one_warning_not_a_failure(workflow, capsys):
    _meta(workflow / TEST, lambda m: m.pop("checksums"))
    rc, out, err = _verify(capsys)
    assert rc == 0
    assert err == [
        f"imprint verify: warning: {TEST}: no checksums in meta.json (written by hand or before "
        "they were added), so its arrays cannot be verified"
    ]
    assert out[0].startswith("1 embedding set verified, 3 files,")
    assert out[0].endswith("; 1 without checksums (unverifiable)")


def test_temporaries_are_skipped_and_paths_elsewhere_get_directory(workflow, capsys, tmp_path):
    # A temporary sibling left by SIGKILL (atomic_path) is no cached set.
    _set(workflow / "results/embeddings/digits/pixels/.train.x1.tmp/train")
    _flip(workflow / "results/embeddings/digits/pixels/.train.x1.tmp/train/embeddings.npy")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    _flip(workflow / TRAIN / "embeddings.npy")
    rc, out, _ = _verify(capsys, str(workflow / "results"))
    assert rc == 1 and len(out) == 2, out
    assert out[0].endswith(
        f"with: snakemake --directory {workflow} --cores all --forcerun {TRAIN}/embeddings.npy"
    )


def test_a_set_outside_a_workflow_and_a_missing_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _set(tmp_path / "mine/fm_a")
    _flip(tmp_path / "mine/fm_a/embeddings.npy")
    rc, out, _ = _verify(capsys, "mine")
    assert rc == 1 and "snakemake" not in out[0]
    assert out[0].endswith(
        "write mine/fm_a again: rerun the code or command that made it "
        "(imprint.io.save_embeddings, imprint concat)"
    )
    rc, out, err = _verify(capsys, "nowhere")
    assert rc == 2 and err == ["imprint verify: error: nowhere: no such folder"]
    rc, out, err = _verify(capsys, "mine/fm_a/meta.json")
    assert rc == 2 and len(err) == 1 and "not a folder" in err[0]
    rc, out, err = _verify(capsys, "mine/fm_a")  # a set itself
    assert rc == 1 and len(out) == 2


def test_rebuild_command_and_the_readers_hint(workflow):
    assert rebuild_command(TRAIN) == f"{FORCERUN} {TRAIN}/embeddings.npy"
    assert rebuild_command(workflow / TRAIN, TEST) == (
        f"{FORCERUN} {TRAIN}/embeddings.npy {TEST}/embeddings.npy"
    )
    assert rebuild_command("mine/fm_a") is None
    assert rebuild_command(workflow / TRAIN, "/elsewhere/results/embeddings/d/b/train") is None
    # Every reader names the same command (a job, `imprint evaluate`).
    _flip(workflow / TRAIN / "embeddings.npy")
    with pytest.raises(ChecksumError) as err:
        load_embeddings(TRAIN)
    assert str(err.value).endswith(
        "`imprint verify` lists every corrupted cached set; rebuild it and what was built from "
        f"it with: {FORCERUN} {TRAIN}/embeddings.npy"
    )
    assert "\n" not in str(err.value)
    check = verify_embedding_set(workflow / TRAIN)
    assert check.files == 3 and len(check.problems) == 1


@pytest.mark.parametrize("module", [io, caches], ids=["reader", "imprint-verify"])
def test_readers_and_imprint_verify_name_the_same_rebuild_command(workflow, module):
    assert module.rebuild_command(TRAIN) == f"{FORCERUN} {TRAIN}/embeddings.npy"
    assert module.rebuild_command("mine/fm_a") is None
    assert module.rebuild_advice(Path("mine/fm_a")) == (
        "write mine/fm_a again: rerun the code or command that made it "
        "(imprint.io.save_embeddings, imprint concat)"
    )


def test_the_cache_folder_io_knows_is_where_the_workflow_writes_its_sets():
    # io builds a reader's rebuild command without importing planning, which sits above it.
    cached = "/".join(io.WORKFLOW_EMBEDDINGS) + "/"
    assert paths.EMBEDDINGS.startswith(cached) and paths.SOURCE_EMBEDDINGS.startswith(cached)


def test_a_readers_rebuild_hint_imports_no_planning(workflow):
    _flip(workflow / TRAIN / "embeddings.npy")
    script = (
        "import sys\n"
        "from imprint.io import ChecksumError, load_embeddings\n"
        "try:\n"
        f"    load_embeddings({TRAIN!r})\n"
        "except ChecksumError as err:\n"
        "    print(err)\n"
        "print(sorted(m for m in sys.modules if m.startswith('imprint.planning')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    ).stdout.splitlines()
    assert out[0].endswith(f"{FORCERUN} {TRAIN}/embeddings.npy") and out[1] == "[]"


def _rule_log(tmp_path):
    sys.path.insert(0, str(REPO / "workflow/scripts"))
    try:
        from _common import rule_log
    finally:
        sys.path.remove(str(REPO / "workflow/scripts"))
    log = tmp_path / "job.log"
    return rule_log(SimpleNamespace(log=[str(log)], rule="imprint_grid")), log


@pytest.fixture
def root_logger():
    """rule_log points the root logger at the job's log (basicConfig(force=True)): put it back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_job_meeting_a_corrupted_cache_ends_in_one_line(tmp_path, capsys, root_logger):
    context, log = _rule_log(tmp_path)
    with pytest.raises(SystemExit) as stop, context:
        print("working")
        raise ChecksumError("results/x/embeddings.npy: checksum mismatch; rebuild it with: cmd")
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert err == "results/x/embeddings.npy: checksum mismatch; rebuild it with: cmd\n"
    text = log.read_text()
    assert text.startswith("working\n") and "Traceback" not in text
    assert text.rstrip().endswith(
        "ERROR results/x/embeddings.npy: checksum mismatch; rebuild it with: cmd"
    )
    # Any other error is a bug until shown otherwise: its traceback is kept in the log.
    context, log = _rule_log(tmp_path)
    with pytest.raises(ZeroDivisionError), context:
        1 / 0  # noqa: B018
    assert "Traceback" in log.read_text() and capsys.readouterr().err == ""
    # EmbeddingFileError is the base: a malformed file given to a job fails the same way.
    context, log = _rule_log(tmp_path)
    with pytest.raises(SystemExit), context:
        raise EmbeddingFileError("data/x.npz: labels must be integers")
    assert capsys.readouterr().err == "data/x.npz: labels must be integers\n"


def test_a_set_missing_its_arrays_or_its_meta_is_reported_not_skipped(workflow, capsys):
    # Deleted files are exactly what Snakemake does not rebuild while what was built from
    # them is up to date: verify must name them.
    (workflow / TRAIN / "embeddings.npy").unlink()
    (workflow / TEST / "meta.json").unlink()
    rc, out, _ = _verify(capsys)
    assert rc == 1, out
    assert out[0].startswith(f"{TEST}/meta.json: missing"), out
    assert out[1].startswith(f"{TRAIN}/embeddings.npy: missing (meta.json lists its checksum)")
    assert out[2].startswith("2 of 2 embedding sets corrupted")


def test_a_rerun_writes_over_an_earlier_set_but_never_over_a_users_folder(tmp_path):
    # What Snakemake leaves of an earlier set before rerunning its rule: ids.npy (not a
    # declared output) and its bookkeeping (.snakemake_timestamp of directory() outputs).
    from imprint.outputs import OutputError

    old = _set(tmp_path / "set")
    for name in ("embeddings.npy", "labels.npy", "meta.json"):
        (old / name).unlink()
    (old / ".snakemake_timestamp").write_text("")
    new = _set(tmp_path / "set", n=6)
    assert load_embeddings(new).embeddings.shape == (6, 4)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="folder holding other things"):
        _set(mine)
    assert (mine / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]  # no temporary left


def test_a_write_removes_its_own_stale_temporary_but_not_a_sibling_outputs(tmp_path):
    # SIGKILL leaves `.emb.<8 random>.tmp`; the next write of `emb` removes it, but not the
    # temporary of `emb.npz`, which a concurrent writer of that other output may own.
    import tempfile

    from imprint.outputs import atomic_path

    mine = tempfile.mkdtemp(prefix=".emb.", suffix=".tmp", dir=tmp_path)
    theirs = tempfile.mkdtemp(prefix=".emb.npz.", suffix=".tmp", dir=tmp_path)
    with atomic_path(tmp_path / "emb") as tmp:
        tmp.write_text("x")
    assert not Path(mine).exists() and Path(theirs).exists()
    assert (tmp_path / "emb").read_text() == "x"


def test_an_output_never_holds_the_current_folder_even_forced(tmp_path, monkeypatch):
    from imprint.outputs import OutputError, check_output

    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    for out in (".", "..", str(tmp_path)):
        with pytest.raises(OutputError, match="current folder or holds it"):
            check_output(out, "embeddings", force=True)


def test_extraction_checks_its_output_before_any_work(tmp_path):
    # A folder of the user's as the output: refused before the dataset is even looked for
    # (root holds no dataset, and downloading is off: a later check would fail on that).
    from imprint.data.extract import extract_to_file
    from imprint.outputs import OutputError

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="folder holding 1 other"):
        extract_to_file("pixels", "mnist", "train", tmp_path / "nodata", tmp_path / "out")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"
