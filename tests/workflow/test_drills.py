"""Interruption drills on a small real run: SIGKILL during extraction and during imprinting (of
the whole run, or of Snakemake alone while its job runs on), SIGKILL while an output's temporary
sibling is half-written, a corrupted cache found by `imprint verify` and `snakemake
verify_caches`, a full disk. After each, the documented recovery (README, "When things go
wrong") ends with outputs equal to an uninterrupted run's, byte for byte where no time is
recorded, and nothing half-written or temporary is left behind."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from _snakemake import REPO, job_counts, load_config, snakemake

pytestmark = pytest.mark.slow

TINY = load_config("tiny")
# One extracted backbone (a random ResNet-18: its job lives long enough to be killed), one
# small grid, every table kind of that experiment, and one figure: its PDF, then its PNG, take
# ~0.2 s each to write into their temporary siblings (outputs.atomic_path), the longest writes
# of the run (an embedding set takes a few ms), long enough to kill the run during one.
DRILL = {
    "datasets": TINY["datasets"],
    "backbones": {"resnet18_random": TINY["backbones"]["resnet18_random"]},
    "extraction": TINY["extraction"],
    "mappings": {"none": {}},
    "tasks": {"short": [0, 1, 2]},
    "experiments": {
        "drill": {
            "grid": {"seeds": [1, 2], "gen": ["mean", "kmeans", "all"], "k": [1, 3]},
            "datasets": ["digits"],
            "backbones": ["resnet18_random"],
            "mappings": ["none"],
            "tasks": ["short"],
            "figures": ["accuracy_overview"],
        }
    },
}
EXTRACT_LOG = "logs/extract_embeddings/digits/resnet18_random/train.log"
IMPRINT_LOG = "logs/imprint_grid/drill/digits/resnet18_random/none/short.log"
EMBEDDINGS = "results/embeddings/digits/resnet18_random/train"
FIGURE = "results/figures/drill/accuracy_overview.pdf"


def _workdir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.yaml").write_text(yaml.safe_dump(DRILL, sort_keys=False))
    return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, object]:
    """Every output of an uninterrupted run."""
    d = _workdir(tmp_path_factory.mktemp("reference"))
    snakemake(d)
    return _outputs(d)


def _outputs(workdir: Path) -> dict[str, object]:
    """results/, comparable: arrays, figures and text byte for byte (a PDF without its
    creation date), tables without their timing columns, JSON without timing keys."""
    out: dict[str, object] = {}
    for path in sorted((workdir / "results").rglob("*")):
        if path.is_dir():
            continue
        name = str(path.relative_to(workdir))
        if path.suffix == ".parquet":
            table = pd.read_parquet(path)
            out[name] = table.drop(columns=[c for c in table if c.endswith("_seconds")])
        elif path.suffix == ".json":
            data = json.loads(path.read_text())
            out[name] = {k: v for k, v in data.items() if "seconds" not in k}
        elif path.suffix == ".pdf":
            out[name] = re.sub(rb"/CreationDate \(D:[^)]*\)", b"", path.read_bytes())
        else:
            out[name] = path.read_bytes()
    return out


def _assert_same(found: dict, expected: dict) -> None:
    assert sorted(found) == sorted(expected)
    for name, value in expected.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(found[name], value, obj=name)
        else:
            assert found[name] == value, name


def _no_temporaries(workdir: Path) -> None:
    left = [str(p) for p in (workdir / "results").rglob(".*.tmp")]
    assert not left, f"temporary files left: {left}"


def _kill_when(workdir: Path, log: str, output: str, snakemake_alone: bool = False) -> None:
    """Start the workflow, SIGKILL it and its jobs once `log` exists (its job has started)
    while `output` does not yet (the job has not finished). `snakemake_alone`: kill Snakemake
    only (as the OOM killer may), and wait until its orphaned job has finished too."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
    proc = subprocess.Popen(
        [*cmd, "--directory", str(workdir), "--cores", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the jobs die with it
    )
    deadline = time.monotonic() + 600
    try:
        while not (workdir / log).exists():
            assert proc.poll() is None, "the workflow ended before the job started"
            assert time.monotonic() < deadline, f"{log} never appeared"
            time.sleep(0.05)
        assert not (workdir / output).exists(), "the job ended before it could be killed"
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if not snakemake_alone:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    while True:  # the job, orphaned, runs to its end
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError("the orphaned job never ended")
        time.sleep(0.1)


def _kill_while_writing(workdir: Path, output: str) -> Path:
    """Start the workflow; once `output`'s temporary sibling (atomic_path's
    `.<name>.<8 characters>.tmp`, polled for) exists, stop the whole run (SIGSTOP: nothing
    moves while it is looked at), then let it on a few milliseconds at a time until the file
    is being written inside the temporary (the last ~30 ms of a PDF's ~0.2 s write: open, its
    bytes mostly still in matplotlib's buffer); check that the temporary is still there and
    `output` is not, and SIGKILL the run. Returns the temporary."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]
    proc = subprocess.Popen(
        [*cmd, "--directory", str(workdir), "--cores", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the jobs stop and die with it
    )
    target = workdir / output
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[a-z0-9_]{{8}}\.tmp")
    deadline = time.monotonic() + 600

    def stop() -> None:
        os.killpg(proc.pid, signal.SIGSTOP)
        time.sleep(0.001)  # delivered to every process of the group

    try:
        while True:
            assert proc.poll() is None, f"the workflow ended without a temporary of {output} seen"
            assert time.monotonic() < deadline, f"no temporary of {output} ever appeared"
            assert not target.exists(), f"{output} was written before its temporary was seen"
            try:
                found = [e.name for e in os.scandir(target.parent) if pattern.fullmatch(e.name)]
            except FileNotFoundError:
                found = []
            if found:
                stop()
                break
            time.sleep(0.002)
        temporary = target.parent / found[0]
        while not (temporary / target.name).exists():
            assert temporary.exists() and not target.exists(), "the write ended while stepped"
            assert time.monotonic() < deadline, f"{output} was never written in {temporary}"
            os.killpg(proc.pid, signal.SIGCONT)
            time.sleep(0.003)
            stop()
        assert temporary.exists() and not target.exists(), "the write ended first"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return temporary


def _recover(workdir: Path) -> None:
    """The README's recovery: a plain rerun is refused with the unlock hint (the lock is left;
    the killed job's output was never renamed into place, so no file is incomplete), then
    unlock and rerun the incomplete jobs."""
    locked = snakemake(workdir, check=False)
    text = locked.stdout + locked.stderr
    assert locked.returncode != 0 and "LockException" in text and "--unlock" in text, text[-2000:]
    assert "IncompleteFilesException" not in text, text[-2000:]
    snakemake(workdir, "--unlock")
    snakemake(workdir, "--rerun-incomplete")


def test_sigkill_during_extraction_then_unlock_and_rerun_gives_the_same_outputs(
    tmp_path, reference
):
    d = _workdir(tmp_path)
    _kill_when(d, EXTRACT_LOG, f"{EMBEDDINGS}/embeddings.npy")
    _recover(d)
    _assert_same(_outputs(d), reference)
    _no_temporaries(d)


def test_sigkill_during_imprinting_then_unlock_and_rerun_gives_the_same_outputs(
    tmp_path, reference
):
    d = _workdir(tmp_path)
    _kill_when(d, IMPRINT_LOG, "results/imprint/drill/digits/resnet18_random/none/short.parquet")
    _recover(d)
    _assert_same(_outputs(d), reference)
    _no_temporaries(d)


def test_sigkill_while_a_temporary_is_written_then_recovery_removes_it(tmp_path, reference):
    # Killed inside atomic_path, while the figure's PDF is written into its temporary sibling.
    d = _workdir(tmp_path)
    temporary = _kill_while_writing(d, FIGURE)
    assert temporary.is_dir() and not (d / FIGURE).exists()  # left by the kill
    assert [p.name for p in temporary.iterdir()] == ["accuracy_overview.pdf"]  # being written
    with pytest.raises(AssertionError, match="temporary files left"):
        _no_temporaries(d)  # the check sees it
    locked = snakemake(d, check=False)  # refused with the unlock hint: nothing runs
    text = locked.stdout + locked.stderr
    assert "LockException" in text and "IncompleteFilesException" not in text, text[-2000:]
    snakemake(d, "--unlock")
    assert temporary.is_dir()  # the same temporary, until the figure is written again
    snakemake(d, "--rerun-incomplete")
    assert not temporary.exists()  # removed by the next write of the same path
    _no_temporaries(d)
    _assert_same(_outputs(d), reference)


def test_sigkill_of_snakemake_alone_leaves_incomplete_files_then_the_same_recovery(
    tmp_path, reference
):
    d = _workdir(tmp_path)
    _kill_when(d, EXTRACT_LOG, f"{EMBEDDINGS}/embeddings.npy", snakemake_alone=True)
    assert (d / EMBEDDINGS / "embeddings.npy").exists()  # written after Snakemake died
    # Snakemake checks its incomplete markers (.snakemake/incomplete) before its lock: a file
    # that exists but whose job never reported back is named first.
    first = snakemake(d, check=False)
    text = first.stdout + first.stderr
    assert first.returncode != 0 and "IncompleteFilesException" in text, text[-2000:]
    assert "LockException" not in text and "--rerun-incomplete" in text
    assert f"{EMBEDDINGS}/embeddings.npy" in text
    # With --rerun-incomplete alone, the lock is met next; the README's two commands recover.
    locked = snakemake(d, "--rerun-incomplete", check=False)
    assert locked.returncode != 0 and "LockException" in locked.stdout + locked.stderr
    snakemake(d, "--unlock")
    snakemake(d, "--rerun-incomplete")
    _assert_same(_outputs(d), reference)
    _no_temporaries(d)


def _imprint_verify(workdir: Path, capsys) -> tuple[int, list[str]]:
    from imprint.cli.main import main

    here = Path.cwd()
    os.chdir(workdir)
    try:
        rc = main(["verify", "-q"])
    except SystemExit as stop:
        rc = stop.code
    finally:
        os.chdir(here)
    out, err = capsys.readouterr()
    return rc, out.splitlines()


def test_a_corrupted_cache_is_seen_refused_and_regenerated(tmp_path, reference, capsys):
    d = _workdir(tmp_path)
    snakemake(d)
    array = d / EMBEDDINGS / "embeddings.npy"
    stat = array.stat()
    raw = bytearray(array.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = np.full(16, 12.08, np.float32).tobytes()  # finite, wrong
    array.write_bytes(bytes(raw))
    os.utime(array, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # bit rot: the time is kept
    # Snakemake compares modification times: it sees nothing to do.
    dry = snakemake(d, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr
    # `imprint verify` finds it: one line naming the file, ending in the command that rebuilds it.
    rebuild = f"snakemake --cores all --forcerun {EMBEDDINGS}/embeddings.npy"
    rc, out = _imprint_verify(d, capsys)
    assert rc == 1 and len(out) == 2, out
    assert out[0].startswith(f"{EMBEDDINGS}/embeddings.npy: checksum mismatch (meta.json says")
    assert out[0].endswith(f"; rebuild it and what was built from it with: {rebuild}")
    assert out[1].startswith("1 of 2 embedding sets corrupted (6 files, ")
    # So does the workflow's target, listing it on the console.
    target = snakemake(d, "verify_caches", check=False)
    text = target.stdout + target.stderr
    assert target.returncode != 0 and out[0] in text and "Traceback" not in text, text[-3000:]
    assert out[0] in (d / "logs/verify_caches.log").read_text()
    # A job that reads the corrupted file refuses it before using a value: one line on the
    # console naming the file and the fix, the same in its log, no traceback.
    run = snakemake(d, "--forcerun", "imprint_grid", check=False)
    text = run.stdout + run.stderr
    assert run.returncode != 0 and "Traceback" not in text, text[-3000:]
    lines = [line for line in text.splitlines() if f"{EMBEDDINGS}/embeddings.npy:" in line]
    assert len(lines) == 1 and "checksum mismatch" in lines[0], lines
    assert "`imprint verify` lists every corrupted cached set" in lines[0]
    assert lines[0].endswith(f"rebuild it and what was built from it with: {rebuild}")
    assert lines[0] in (d / IMPRINT_LOG).read_text()
    # The printed command, run as printed in the workflow's folder (the Snakefile named, as
    # this test's folder has none), rebuilds the set and what was built from it.
    proc = subprocess.run(
        [*shlex.split(rebuild)[:1], "--snakefile", str(REPO / "Snakefile")]
        + shlex.split(rebuild)[1:],
        cwd=d,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert job_counts(proc.stdout + proc.stderr)["extract_embeddings"] == 1
    rc, out = _imprint_verify(d, capsys)
    assert rc == 0 and out[0].startswith("2 embedding sets verified, 6 files, "), out
    snakemake(d, "verify_caches")  # asked again, it runs again: no output to be up to date
    assert "2 embedding sets verified" in (d / "logs/verify_caches.log").read_text()
    _assert_same(_outputs(d), reference)
    _no_temporaries(d)
    # An array rewritten (a new modification time, other bytes) Snakemake does see: -n plans
    # what was built from it, not its extraction.
    other = d / EMBEDDINGS.replace("train", "test") / "embeddings.npy"
    other.write_bytes(other.read_bytes()[:-4] + b"\0\0\0\0")
    dry = snakemake(d, "-n")
    plan = job_counts(dry.stdout + dry.stderr)
    assert plan.get("imprint_grid") == 1 and "extract_embeddings" not in plan, plan


def test_a_full_disk_during_a_write_leaves_nothing_and_says_so(tmp_path, capsys):
    from imprint.cli.main import main
    from imprint.io import save_embeddings

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.decode()}")
    try:
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((400, 64)).astype(np.float32), np.arange(400) % 4
        with pytest.raises(OSError, match="No space left on device"):
            save_embeddings(disk / "set", x, y)  # 100 KiB of embeddings into 64 KiB
        assert not list(disk.iterdir()), list(disk.iterdir())
        # The command, on a disk that is already full: refused in one line naming the table.
        save_embeddings(tmp_path / "train", x, y)
        save_embeddings(tmp_path / "test", x[:40], y[:40])
        (tmp_path / "grid.yaml").write_text("gen: [mean]\n")
        with open(disk / "filler", "wb", buffering=0) as fh, pytest.raises(OSError):
            while True:
                fh.write(b"\0" * 4096)
        before = sorted(disk.iterdir())
        rc = main(
            [
                "evaluate",
                "--train",
                str(tmp_path / "train"),
                "--test",
                str(tmp_path / "test"),
                "--grid",
                str(tmp_path / "grid.yaml"),
                "--out",
                str(disk / "out.csv"),
                "-q",
            ]
        )
        err = capsys.readouterr().err
        assert rc == 2 and "No space left on device" in err and str(disk) in err, err
        assert err.count("\n") == 1 and "Traceback" not in err, err
        assert sorted(disk.iterdir()) == before
    finally:
        subprocess.run(["umount", str(disk)], check=False)
