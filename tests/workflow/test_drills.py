"""Interruption drills on a small real run: SIGKILL during extraction and during imprinting,
a corrupted cache, a full disk. After each, the documented recovery (README, "When things go
wrong") ends with outputs equal to an uninterrupted run's, byte for byte where no time is
recorded, and nothing half-written or temporary is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from _snakemake import REPO, load_config, snakemake

pytestmark = pytest.mark.slow

TINY = load_config("tiny")
# One extracted backbone (a random ResNet-18: its job lives long enough to be killed), one
# small grid, every table kind of that experiment.
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
            "figures": [],
        }
    },
}
EXTRACT_LOG = "logs/extract_embeddings/digits/resnet18_random/train.log"
IMPRINT_LOG = "logs/imprint_grid/drill/digits/resnet18_random/none/short.log"
EMBEDDINGS = "results/embeddings/digits/resnet18_random/train"


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
    """results/, comparable: arrays and text byte for byte, tables without their timing
    columns, JSON without timing keys."""
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


def _kill_when(workdir: Path, log: str, output: str) -> None:
    """Start the workflow, SIGKILL it and its jobs once `log` exists (its job has started)
    while `output` does not yet (the job has not finished)."""
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
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _recover(workdir: Path) -> None:
    """The README's recovery: a plain rerun is refused with the unlock hint, then unlock and
    rerun the incomplete jobs."""
    locked = snakemake(workdir, check=False)
    text = locked.stdout + locked.stderr
    assert locked.returncode != 0 and "--unlock" in text, text[-2000:]
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


def test_a_corrupted_cache_is_seen_refused_and_regenerated(tmp_path, reference):
    d = _workdir(tmp_path)
    snakemake(d)
    array = d / EMBEDDINGS / "embeddings.npy"
    raw = bytearray(array.read_bytes())
    middle = len(raw) // 2
    raw[middle : middle + 64] = np.full(16, 12.08, np.float32).tobytes()  # finite, wrong
    array.write_bytes(bytes(raw))
    # Snakemake sees the changed file (the rules name it) and plans what was built from it.
    dry = snakemake(d, "-n")
    assert "imprint_grid" in dry.stdout and "Nothing to be done" not in dry.stdout
    # The job refuses the array before using it, naming the file and the remedy.
    run = snakemake(d, check=False)
    log = (d / IMPRINT_LOG).read_text()
    assert run.returncode != 0
    assert f"{EMBEDDINGS}/embeddings.npy: checksum mismatch" in log
    assert "delete" in log and "rerun the workflow" in log
    # The remedy: delete the cached set; the rerun extracts it again, identical.
    import shutil

    shutil.rmtree(d / EMBEDDINGS)
    snakemake(d)
    _assert_same(_outputs(d), reference)
    _no_temporaries(d)


def test_a_full_disk_during_a_write_leaves_nothing_and_says_so(tmp_path, capsys):
    from imprint.cli import main
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
