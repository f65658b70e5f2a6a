"""Bad inputs, as a tired researcher at 2 a.m. makes them, against the `imprint` command.

Every case runs `imprint ...` in-process on small files made here and asserts: the exit code,
that stderr names the culprit (file, key or value) and no traceback, that nothing is left
behind (no output, no temporary sibling), and for valid but surprising inputs exactly one
warning line. Workflow-config cases (YAML errors, unknown keys, unregistered backbones) are
in tests/workflow/test_configs.py; interruption drills in tests/workflow/test_drills.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from imprint.cli import main
from imprint.io import save_embeddings

N_CLASSES, PER_CLASS, DIM = 3, 12, 8


def _embeddings(seed: int, n_classes: int = N_CLASSES, per_class: int = PER_CLASS, dim: int = DIM):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    x = rng.standard_normal((labels.size, dim)).astype(np.float32) + 3 * labels[:, None]
    return x, labels


def _npz(path: Path, x, y, **extra) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, embeddings=x, labels=y, **extra)


def _standard_files(tmp: Path) -> None:
    """The good inputs every case starts from: one training and one test set (.npz and as
    workflow directories), a one-configuration grid, a mapping and a results table for `cd`."""
    x, y = _embeddings(0)
    _npz(tmp / "train.npz", x, y)
    save_embeddings(
        tmp / "train_dir", x, y, {"backbone": "resnet18", "dataset": "d", "split": "train"}
    )
    xt, yt = _embeddings(1, per_class=5)
    _npz(tmp / "test.npz", xt, yt)
    save_embeddings(
        tmp / "test_dir", xt, yt, {"backbone": "resnet18", "dataset": "d", "split": "test"}
    )
    (tmp / "grid.yaml").write_text("gen: [mean]\nagg: [max]\nnorm_pre: [l2]\nnorm_inf: [l2]\n")
    (tmp / "map.yaml").write_text("0: 0\n1: 1\n2: 1\n")
    rows = [
        {"dataset": f"d{g}", "config_id": m, "accuracy": 50.0 + 10 * m + g}
        for g in range(4)
        for m in range(3)
    ]
    _write_csv(tmp / "scores.csv", rows)


def _write_csv(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    pd.DataFrame(rows).to_csv(path, index=False)


def _scores(tmp: Path, edit: Callable[[list[dict]], list[dict]]) -> None:
    import pandas as pd

    rows = pd.read_csv(tmp / "scores.csv").to_dict("records")
    _write_csv(tmp / "scores.csv", edit(rows))


def _set(name: str, **kw) -> Callable[[Path], None]:
    """Replace `name` (a .npz) with other arrays: kw override the standard embeddings/labels."""

    def make(tmp: Path) -> None:
        x, y = _embeddings(0 if "train" in name else 1, per_class=12 if "train" in name else 5)
        arrays = {"embeddings": x, "labels": y} | kw
        with open(tmp / name, "wb") as fh:
            np.savez(fh, **arrays)

    return make


def _set_both(labels: Callable[[int], np.ndarray]) -> Callable[[Path], None]:
    """Relabel the training and the test .npz alike (labels(n): n rows per class)."""

    def make(tmp: Path) -> None:
        _set("train.npz", labels=labels(PER_CLASS))(tmp)
        _set("test.npz", labels=labels(5))(tmp)

    return make


def _tiny_config(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    """.test/tiny/config.yaml, edited, as c.yaml."""

    def make(tmp: Path) -> None:
        import yaml

        repo = Path(__file__).resolve().parents[1]
        config = yaml.safe_load((repo / ".test/tiny/config.yaml").read_text())
        edit(config)
        (tmp / "c.yaml").write_text(yaml.safe_dump(config))

    return make


def _corrupt(path: str, offset: int = -64, data: bytes = np.full(16, 12.08, np.float32).tobytes()):
    def make(tmp: Path) -> None:
        f = tmp / path
        raw = bytearray(f.read_bytes())
        start = offset if offset >= 0 else len(raw) + offset
        raw[start : start + len(data)] = data
        f.write_bytes(bytes(raw))

    return make


def _edit_meta(path: str, edit: Callable[[dict], None]):
    def make(tmp: Path) -> None:
        f = tmp / path / "meta.json"
        meta = json.loads(f.read_text())
        edit(meta)
        f.write_text(json.dumps(meta))

    return make


def _write(path: str, text: str):
    def make(tmp: Path) -> None:
        (tmp / path).write_text(text)

    return make


def _with(value, rows: int = 0, dtype=np.float32):
    x, _ = _embeddings(0 if rows == 0 else 1, per_class=12 if rows == 0 else 5)
    x = x.astype(dtype)
    x[min(rows, len(x) - 1), 3] = value
    return x


def _npz_only(path: Path, **arrays) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _truncate(path: Path, keep: int) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[:keep])


def _read_only_dir(path: Path) -> None:
    path.mkdir()
    path.chmod(0o555)


@dataclasses.dataclass
class Case:
    id: str
    argv: list[str]  # paths relative to the case's directory
    culprit: list[str]  # each must appear in stderr
    make: Callable[[Path], None] | None = None
    rc: int = 2
    warning: bool = False  # valid but surprising: exit 0 and exactly one warning line


EV = ["evaluate", "--train", "train.npz", "--test", "test.npz", "--grid", "grid.yaml"]
OUT = ["--out", "out.csv", "-q"]
CD = ["cd", "scores.csv", "--out-prefix", "cd/out", "--groups", "dataset"]


def ev(*extra: str, train: str = "train.npz", test: str = "test.npz") -> list[str]:
    return ["evaluate", "--train", train, "--test", test, "--grid", "grid.yaml", *OUT, *extra]


CASES = [
    # --- embedding files: missing, not what they are called, malformed
    Case("train-missing", ev(train="nope.npz"), ["nope.npz", "no such"]),
    Case("test-missing", ev(test="nope.npz"), ["nope.npz", "no such"]),
    Case(
        "npz-is-text", ev(), ["train.npz", "text"], _write("train.npz", "embeddings,labels\n1,2\n")
    ),
    Case(
        "npz-is-npy",
        ev(),
        ["train.npz", "single array"],
        lambda t: np.save(open(t / "train.npz", "wb"), np.zeros((3, 2))),
    ),
    Case("npz-is-empty-file", ev(), ["train.npz", "empty"], _write("train.npz", "")),
    Case(
        "npz-without-labels",
        ev(),
        ["train.npz", "labels"],
        lambda t: _npz_only(t / "train.npz", embeddings=np.zeros((4, 2), np.float32)),
    ),
    Case(
        "npz-pickled",
        ev(),
        ["train.npz", "pickled"],
        _set("train.npz", embeddings=np.array([object()] * 36, dtype=object)),
    ),
    Case("npz-truncated", ev(), ["train.npz"], lambda t: _truncate(t / "train.npz", 200)),
    Case(
        "embeddings-1d",
        ev(),
        ["train.npz", "2-D"],
        _set("train.npz", embeddings=np.zeros(36, np.float32)),
    ),
    Case(
        "embeddings-no-rows",
        ev(),
        ["train.npz", "no rows"],
        _set("train.npz", embeddings=np.zeros((0, 8), np.float32), labels=np.zeros(0, np.int64)),
    ),
    Case(
        "embeddings-no-columns",
        ev(),
        ["train.npz", "no columns"],
        _set("train.npz", embeddings=np.zeros((36, 0), np.float32)),
    ),
    Case(
        "embeddings-integer",
        ev(),
        ["train.npz", "floating point", "int"],
        _set("train.npz", embeddings=np.ones((36, 8), np.int32)),
    ),
    Case(
        "embeddings-strings",
        ev(),
        ["train.npz", "floating point"],
        _set("train.npz", embeddings=np.full((36, 8), "a")),
    ),
    Case("embeddings-nan", ev(), ["train.npz", "NaN"], _set("train.npz", embeddings=_with(np.nan))),
    Case(
        "embeddings-inf",
        ev(),
        ["test.npz", "inf"],
        _set("test.npz", embeddings=_with(np.inf, rows=15)),
    ),
    Case(
        "embeddings-overflow-float32",
        ev(),
        ["train.npz", "float32"],
        _set("train.npz", embeddings=_with(1e39, dtype=np.float64)),
    ),
    Case(
        "embeddings-squares-overflow",
        ev(),
        ["train.npz", "overflow"],
        _set("train.npz", embeddings=_with(3e19)),
    ),
    Case(
        "labels-float-fractional",
        ev(),
        ["train.npz", "integers"],
        _set("train.npz", labels=np.repeat(np.arange(3), 12) + 0.5),
    ),
    Case(
        "labels-strings",
        ev(),
        ["train.npz", "integers"],
        _set("train.npz", labels=np.repeat(np.array(["a", "b", "c"]), 12)),
    ),
    Case(
        "labels-length",
        ev(),
        ["train.npz", "one entry per"],
        _set("train.npz", labels=np.arange(35) % 3),
    ),
    Case(
        "labels-2d",
        ev(),
        ["train.npz", "1-D"],
        _set("train.npz", labels=np.zeros((36, 2), np.int64)),
    ),
    Case(
        "labels-negative",
        ev(),
        ["train.npz", "negative", "-1"],
        _set("train.npz", labels=np.repeat(np.arange(-1, 2), 12)),
    ),
    # valid as they are: no error, no warning
    Case("labels-with-gaps", ev(), [], _set_both(labels=lambda n: np.repeat([0, 4, 9], n)), rc=0),
    Case(
        "embeddings-float16",
        ev(),
        [],
        _set("train.npz", embeddings=_embeddings(0)[0].astype(np.float16)),
        rc=0,
    ),
    Case(
        "dims-differ",
        ev(),
        ["dimension", "8", "5"],
        _set("test.npz", embeddings=np.ones((15, 5), np.float32)),
    ),
    Case("meta-not-json", ev(), ["train.npz", "JSON"], _set("train.npz", meta="{backbone: x")),
    # --- workflow caches: corrupted, edited, partial
    Case(
        "cache-corrupted",
        ev(train="train_dir"),
        ["train_dir/embeddings.npy", "checksum mismatch", "rerun"],
        _corrupt("train_dir/embeddings.npy"),
    ),
    Case(
        "cache-header-corrupted",
        ev(train="train_dir"),
        ["train_dir"],
        _corrupt("train_dir/embeddings.npy", offset=20, data=b">f4"),
    ),
    Case(
        "cache-labels-corrupted",
        ev(test="test_dir"),
        ["test_dir/labels.npy", "checksum mismatch"],
        _corrupt("test_dir/labels.npy", data=np.full(8, 1, np.int64).tobytes()),
    ),
    Case(
        "cache-truncated",
        ev(train="train_dir"),
        ["train_dir"],
        lambda t: _truncate(t / "train_dir/embeddings.npy", 64),
    ),
    Case(
        "cache-file-missing",
        ev(train="train_dir"),
        ["train_dir", "labels.npy", "missing"],
        lambda t: (t / "train_dir/labels.npy").unlink(),
    ),
    Case(
        "cache-meta-broken",
        ev(train="train_dir"),
        ["train_dir/meta.json", "JSON"],
        _write("train_dir/meta.json", "{"),
    ),
    Case(
        "cache-meta-shape",
        ev(train="train_dir"),
        ["train_dir", "meta.json", "36 × 8", "40 × 8"],
        _edit_meta("train_dir", lambda m: m.update(n=40)),
    ),
    Case(
        "cache-checksums-malformed",
        ev(train="train_dir"),
        ["train_dir/meta.json", "checksums"],
        _edit_meta("train_dir", lambda m: m.update(checksums={"embeddings.npy": 5})),
    ),
    Case(
        "cache-without-checksums",
        ev(train="train_dir"),
        ["train_dir", "no checksums"],
        _edit_meta("train_dir", lambda m: m.pop("checksums")),
        rc=0,
        warning=True,
    ),
    Case(
        "train-and-test-backbones-differ",
        ev(train="train_dir", test="test_dir"),
        ["train_dir", "test_dir", "resnet18", "vit_b_16"],
        _edit_meta("test_dir", lambda m: m.update(backbone="vit_b_16")),
    ),
    Case(
        "train-and-test-datasets-differ",
        ev(train="train_dir", test="test_dir"),
        ["dataset", "'d'", "'e'"],
        _edit_meta("test_dir", lambda m: m.update(dataset="e")),
    ),
    Case(
        "train-and-test-swapped",
        ev(train="test_dir", test="train_dir"),
        ["test_dir", "split", "test"],
    ),
    Case(
        "train-is-test",
        ev(test="train.npz"),
        ["train.npz", "both the training and the test file"],
        rc=0,
        warning=True,
    ),
    # --- the task
    Case(
        "test-class-not-in-train",
        ev(),
        ["test.npz", "class(es) [3]", "train.npz"],
        _set("test.npz", labels=np.repeat(np.arange(4), [4, 4, 4, 3])),
    ),
    Case("task-empty", ev("--task", ""), ["task", "''"]),
    Case("task-blank-items", ev("--task", ",,"), ["task", "',,'"]),
    Case("task-class-twice", ev("--task", "1,1"), ["distinct", "[1, 1]"]),
    Case("task-one-class", ev("--task", "1"), ["at least 2 classes"]),
    Case("task-words", ev("--task", "cats,dogs"), ["task", "cats,dogs"]),
    Case("task-class-absent", ev("--task", "0,7"), ["train.npz", "[7]"]),
    Case("mapping-missing", ev("--mapping", "nope.yaml"), ["nope.yaml"]),
    Case(
        "mapping-not-a-mapping",
        ev("--mapping", "map.yaml"),
        ["map.yaml", "mapping"],
        _write("map.yaml", "- 1\n- 2\n"),
    ),
    Case(
        "mapping-yaml-error",
        ev("--mapping", "map.yaml"),
        ["map.yaml", "line"],
        _write("map.yaml", "0: [1\n"),
    ),
    Case(
        "mapping-non-integer",
        ev("--mapping", "map.yaml"),
        ["map.yaml", "cat"],
        _write("map.yaml", "0: cat\n"),
    ),
    Case(
        "mapping-onto-one-label",
        ev("--mapping", "map.yaml"),
        ["at least 2 classes"],
        _write("map.yaml", "0: 0\n1: 0\n2: 0\n"),
    ),
    Case(
        "mapping-drops-everything",
        ev("--mapping", "map.yaml"),
        ["map.yaml", "no training rows"],
        _write("map.yaml", "7: 0\n"),
    ),
    Case(
        "fewshot-larger-than-class",
        ev(),
        ["few-shot", "100", "12"],
        _write("grid.yaml", "gen: [mean]\nagg: [max]\nfewshot: [100]\n"),
        rc=0,
        warning=True,
    ),
    # --- options
    Case(
        "ls-lambda-negative",
        ev("--ls-lambda", "-1"),
        ["--ls-lambda", "-1"],
        _write("grid.yaml", "gen: [ls]\nagg: [max]\n"),
    ),
    Case(
        "ls-lambda-zero",
        ev("--ls-lambda", "0"),
        ["--ls-lambda", "0"],
        _write("grid.yaml", "gen: [ls]\nagg: [max]\n"),
    ),
    Case(
        "ls-lambda-nan",
        ev("--ls-lambda", "nan"),
        ["--ls-lambda", "nan"],
        _write("grid.yaml", "gen: [ls]\nagg: [max]\n"),
    ),
    Case(
        "ls-lambda-unknown-backbone",
        ev(),
        ["λ", "--ls-lambda"],
        _write("grid.yaml", "gen: [ls]\nagg: [max]\n"),
    ),
    Case(
        "backbone-unregistered",
        ev("--backbone", "resnet19"),
        ["resnet19", "resnet18"],
        _write("grid.yaml", "gen: [ls]\nagg: [max]\n"),
    ),
    Case("out-bad-suffix", ev()[:-3] + ["--out", "out.txt"], ["out.txt", ".csv"]),
    Case(
        "out-read-only-dir",
        ev()[:-3] + ["--out", "ro/out.csv"],
        ["ro/out.csv", "Permission denied"],
        lambda t: _read_only_dir(t / "ro"),
    ),
    Case(
        "out-parent-is-a-file",
        ev()[:-3] + ["--out", "train.npz/out.csv"],
        ["train.npz/out.csv", "is a file, not a folder"],
    ),
    Case("tag-malformed", ev("--tag", "dataset"), ["--tag", "KEY=VALUE"]),
    Case("tag-clashes", ev("--tag", "accuracy=5"), ["accuracy", "result column"]),
    Case("device-unknown", ev("--device", "tpu"), ["tpu"]),
    # --- grids
    Case("grid-missing", EV[:5] + ["--grid", "nope.yaml", *OUT], ["nope.yaml"]),
    Case(
        "grid-yaml-error",
        ev(),
        ["grid.yaml", "line"],
        _write("grid.yaml", "gen: [mean\nagg: [max]\n"),
    ),
    Case(
        "grid-unknown-key",
        ev(),
        ["grid.yaml", "gens", "allowed"],
        _write("grid.yaml", "gens: [mean]\n"),
    ),
    Case(
        "grid-unknown-gen",
        ev(),
        ["grid.yaml", "medoids", "kmedoids"],
        _write("grid.yaml", "gen: [medoids]\n"),
    ),
    Case("grid-paper-unknown", EV[:5] + ["--grid", "paper:fig7", *OUT], ["fig7", "fig6"]),
    Case("grid-empty", ev(), ["grid.yaml"], _write("grid.yaml", "")),
    Case("grid-empty-list", ev(), ["grid.yaml", "gen"], _write("grid.yaml", "gen: []\n")),
    # --- collapse
    Case("collapse-missing", ["collapse", "nope.npz"], ["nope.npz"]),
    Case(
        "collapse-class-absent", ["collapse", "train.npz", "--classes", "0,9"], ["train.npz", "9"]
    ),
    Case(
        "collapse-ood-dims",
        ["collapse", "train.npz", "--ood", "ood.npz"],
        ["ood.npz", "dimension"],
        _set("ood.npz", embeddings=np.ones((15, 5), np.float32)),
    ),
    Case("collapse-one-class", ["collapse", "train.npz", "--classes", "1"], ["at least 2 classes"]),
    # --- critical differences
    Case("cd-table-missing", ["cd", "nope.csv", "--out-prefix", "cd/out"], ["nope.csv"]),
    Case("cd-table-empty", CD, ["scores.csv", "empty"], _write("scores.csv", "")),
    Case(
        "cd-header-only",
        CD,
        ["scores.csv", "no rows"],
        _write("scores.csv", "dataset,config_id,accuracy\n"),
    ),
    Case(
        "cd-one-voter",
        CD,
        ["one group", "d0"],
        lambda t: _scores(t, lambda r: [x for x in r if x["dataset"] == "d0"]),
    ),
    Case(
        "cd-nan-score",
        CD,
        ["scores.csv", "accuracy", "NaN"],
        lambda t: _scores(
            t,
            lambda r: [x | ({"accuracy": float("nan")} if i == 4 else {}) for i, x in enumerate(r)],
        ),
    ),
    Case(
        "cd-string-scores",
        CD,
        ["scores.csv", "accuracy", "numbers", "high"],
        lambda t: _scores(
            t, lambda r: [x | ({"accuracy": "high"} if i == 2 else {}) for i, x in enumerate(r)]
        ),
    ),
    Case("cd-method-column-missing", CD + ["--method", "gen"], ["gen", "config_id"]),
    Case("cd-score-column-missing", CD + ["--score", "f1"], ["f1", "accuracy"]),
    Case("cd-group-column-missing", CD[:-2] + ["--groups", "task"], ["task", "dataset"]),
    Case(
        "cd-one-method",
        CD,
        ["2 methods"],
        lambda t: _scores(t, lambda r: [x for x in r if x["config_id"] == 0]),
    ),
    Case("cd-alpha", CD + ["--alpha", "5"], ["alpha", "5"]),
    Case("cd-max-methods", CD + ["--max-methods", "1"], ["--max-methods", "1"]),
    Case(
        "cd-out-parent-is-a-file",
        ["cd", "scores.csv", "--out-prefix", "scores.csv/cd", "--groups", "dataset"],
        ["scores.csv/cd_ranks.csv", "not a folder"],
    ),
    Case(
        "collapse-out-parent-is-a-file",
        ["collapse", "train.npz", "--out", "map.yaml/nc.json"],
        ["map.yaml/nc.json", "not a folder"],
    ),
    Case(
        "cd-wrong-suffix",
        ["cd", "scores.txt", "--out-prefix", "cd/out"],
        ["scores.txt", ".csv"],
        _write("scores.txt", "a\n"),
    ),
    # --- workflow configs given with --configfile (Snakemake's own loader names no line)
    Case(
        "config-yaml-error",
        ["check-config", "c.yaml"],
        ["c.yaml", "line 2, column 1"],
        _write("c.yaml", "datasets: {digits: {sources: [digits]}\nbackbones: {}\n"),
    ),
    Case(
        "config-unknown-key",
        ["check-config", "c.yaml"],
        ["c.yaml", "'extractoin'", "allowed:"],
        _tiny_config(lambda c: c.update(extractoin={})),
    ),
    Case(
        "config-unregistered-backbone",
        ["check-config", "c.yaml"],
        ["c.yaml", "backbones.resnet19", "registered:"],
        _tiny_config(lambda c: c["backbones"].update(resnet19={})),
    ),
    Case("config-missing", ["check-config", "nope.yaml"], ["nope.yaml", "no such"]),
    # --- baselines, transferability, similarity
    Case(
        "probe-test-class-not-in-train",
        ["probe", "--train", "train.npz", "--test", "test.npz", "--out", "p.csv"],
        ["test.npz", "class(es) [3]"],
        _set("test.npz", labels=np.repeat(np.arange(4), [4, 4, 4, 3])),
    ),
    Case(
        "probe-penalties-words",
        [
            "probe",
            "--train",
            "train.npz",
            "--test",
            "test.npz",
            "--out",
            "p.csv",
            "--penalties",
            "strong",
        ],
        ["'strong'", "numbers"],
    ),
    Case(
        "probe-penalty-zero",
        [
            "probe",
            "--train",
            "train.npz",
            "--test",
            "test.npz",
            "--out",
            "p.csv",
            "--penalties",
            "0",
        ],
        ["penalty λ must be positive"],
    ),
    Case(
        "probe-knn-k-zero",
        ["probe", "--train", "train.npz", "--test", "test.npz", "--out", "p.csv", "--knn-k", "0"],
        ["k >= 1"],
    ),
    Case(
        "probe-out-suffix",
        ["probe", "--train", "train.npz", "--test", "test.npz", "--out", "p.txt"],
        ["p.txt", ".csv"],
    ),
    Case(
        "transferability-one-class",
        ["transferability", "train.npz", "--classes", "1"],
        ["at least 2 classes"],
    ),
    Case("similarity-one-file", ["similarity", "train.npz"], ["two or more"]),
    Case(
        "similarity-other-images",
        ["similarity", "train.npz", "test.npz"],
        ["test.npz", "train.npz", "not embeddings of the same images", "different row counts"],
    ),
    Case(
        "similarity-shuffled",
        ["similarity", "train.npz", "train_shuffled.npz"],
        ["train_shuffled.npz", "labels differ first at row 0"],
        _set("train_shuffled.npz", labels=np.repeat(np.arange(3), 12)[::-1].copy()),
    ),
    # --- grid command
    Case("grid-command-missing", ["grid", "nope.yaml"], ["nope.yaml"]),
    Case("grid-command-out-suffix", ["grid", "grid.yaml", "--out", "g.json"], ["g.json", ".csv"]),
]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_by_name(case: Case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _standard_files(tmp_path)
    if case.make is not None:
        case.make(tmp_path)
    before = _tree(tmp_path)
    if case.id == "out-read-only-dir" and os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    try:
        rc = main(case.argv)
    except SystemExit as exit_:  # argparse's own errors
        rc = exit_.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert rc == case.rc, err
    for culprit in case.culprit:
        assert culprit in err, f"{culprit!r} not named in:\n{err}"
    warnings = [line for line in err.splitlines() if "warning" in line.lower()]
    if case.warning:
        assert len(warnings) == 1, err
        assert err.strip() == warnings[0], f"more than the warning line:\n{err}"
    else:
        assert not warnings, err
    if case.rc != 0:
        assert err.count("\n") == 1, f"the error is not one line:\n{err}"
        left = _tree(tmp_path) - before
        assert not left, f"left behind: {sorted(left)}"


def test_the_table_has_forty_cases_or_more():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)
