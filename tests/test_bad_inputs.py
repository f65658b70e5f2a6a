"""Bad inputs, as a tired researcher at 2 a.m. makes them, against the `imprint` command.

Every case runs `imprint ...` in-process on small files made here and asserts: the exit code,
that stderr names the culprit (file, key or value) and no traceback, that no file it did not
write changed (every byte, by checksum), that a refusal leaves nothing behind (no output, no
temporary sibling), that what a valid case writes is right (`written`), and for valid but
surprising inputs exactly one warning line. test_no_output_destroys_what_it_did_not_write
points every command's output at its input, at a folder of the user's and at unwritable places. Workflow-config cases (YAML errors, unknown keys, unregistered backbones) are
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

from imprint.cli.main import main
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


def _nearest_mean(train: str = "train.npz", test: str = "test.npz") -> Callable[[Path], None]:
    """`written`: out.csv holds, for each of the grid's 3 seeds, the accuracy of the standard
    grid (GEN mean, NORMpre and NORMinf l2, AGG max) computed directly: each L2-normalised test
    row to the class whose mean of L2-normalised training rows has the largest inner product."""

    def rows(path: Path):
        if path.is_dir():
            return np.load(path / "embeddings.npy"), np.load(path / "labels.npy")
        with np.load(path) as npz:
            return npz["embeddings"], npz["labels"]

    def check(tmp: Path) -> None:
        import pandas as pd

        (x, y), (xt, yt) = rows(tmp / train), rows(tmp / test)
        unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
        x, xt = unit(x.astype(np.float64)), unit(xt.astype(np.float64))
        classes = np.unique(y)
        means = np.stack([x[y == c].mean(axis=0) for c in classes])
        expected = 100.0 * np.mean(classes[np.argmax(xt @ means.T, axis=1)] == yt)
        table = pd.read_csv(tmp / "out.csv")
        assert len(table) == 3 and table["gen"].eq("mean").all()
        assert table["accuracy"].tolist() == pytest.approx([expected] * 3, abs=1e-9)

    return check


def _standard_files(tmp: Path) -> None:
    """The good inputs every case starts from: one training and one test set (.npz and as
    workflow directories), a one-configuration grid, a mapping, a results table for `cd`, two
    embedding sets of the same images with image ids (ids_a.npz, 8-d; ids_b, a folder, 5-d,
    its rows in another order) and a folder of the user's (mine/notes.txt)."""
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
    ids = np.arange(100, 100 + x.shape[0])
    _npz(tmp / "ids_a.npz", x, y, ids=ids)
    shuffled = np.random.default_rng(2).permutation(x.shape[0])
    save_embeddings(tmp / "ids_b", _ids_b(x)[shuffled], y[shuffled], {}, ids=ids[shuffled])
    (tmp / "mine").mkdir()
    (tmp / "mine" / "notes.txt").write_text("a user's notes\n")


def _ids_b(x: np.ndarray) -> np.ndarray:
    """ids_b's embeddings in ids_a's image order: another 5-d view of the same images."""
    return np.tanh(x[:, :5] * 0.5) + 0.1 * x[:, 3:]


def _cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear CKA as Kornblith et al. define it, by the Gram matrices of centred rows (HSIC)."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    ka, kb = a @ a.T, b @ b.T
    return float((ka * kb).sum() / np.sqrt((ka * ka).sum() * (kb * kb).sum()))


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
    written: Callable[[Path], None] | None = None  # exit 0: asserts what was written is right

    def outputs(self) -> list[str]:
        """The paths the command may write: its --out, or the files of its --out-prefix."""
        for flag, value in zip(self.argv, self.argv[1:], strict=False):
            if flag == "--out":
                return [value]
            if flag == "--out-prefix":
                return [f"{value}{end}" for end in CD_OUTPUTS]
        return []


CD_OUTPUTS = ("_ranks.csv", "_pvalues.csv", "_summary.txt", ".pdf", ".png")


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
    Case(
        "labels-with-gaps",
        ev(),
        [],
        _set_both(labels=lambda n: np.repeat([0, 4, 9], n)),
        rc=0,
        written=_nearest_mean(),
    ),
    Case(
        "embeddings-float16",
        ev(),
        [],
        _set("train.npz", embeddings=_embeddings(0)[0].astype(np.float16)),
        rc=0,
        written=_nearest_mean(),
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
        written=_nearest_mean(train="train_dir"),
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
        written=_nearest_mean(test="train.npz"),
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
    Case("cd-alpha", CD + ["--alpha", "5"], ["--alpha", "5"]),
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
        ["--penalties", "'strong'", "number"],
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
        ["--penalties", "> 0", "0"],
    ),
    Case(
        "probe-knn-k-zero",
        ["probe", "--train", "train.npz", "--test", "test.npz", "--out", "p.csv", "--knn-k", "0"],
        ["--knn-k", ">= 1", "0"],
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
    *[],  # more similarity cases below, with the other commands' output and input cases
    Case(
        "similarity-other-images",
        ["similarity", "train.npz", "test.npz"],
        ["test.npz", "train.npz", "not embeddings of the same images", "15 and 36 rows"],
    ),
    Case(
        "similarity-shuffled",
        ["similarity", "train.npz", "train_shuffled.npz"],
        ["train_shuffled.npz", "labels differ first at row 0"],
        _set("train_shuffled.npz", labels=np.repeat(np.arange(3), 12)[::-1].copy()),
    ),
    # --- grid command
    Case("grid-command-missing", ["grid", "nope.yaml"], ["nope.yaml"]),
    Case(
        "grid-exp-similarity-euclidean",
        ["grid", "grid.yaml"],
        ["grid.yaml", "no configuration", "exp_similarity needs distance cosine"],
        _write(
            "grid.yaml",
            "gen: [all]\nagg: [mnn]\ndistance: [euclidean]\nweighting: [exp_similarity]\nm: [5]\n",
        ),
    ),
    Case("grid-command-out-suffix", ["grid", "grid.yaml", "--out", "g.json"], ["g.json", ".csv"]),
]

PROBE = ["probe", "--train", "train.npz", "--test", "test.npz"]


def inc(*extra: str) -> list[str]:
    return [
        *["incremental", "--train", "train.npz", "--test", "test.npz", "--grid", "grid.yaml"],
        *OUT,
        *extra,
    ]


def probe(*extra: str, out: str = "p.csv") -> list[str]:
    return [*PROBE, "--out", out, *extra]


def _table(path: str, **expected) -> Callable[[Path], None]:
    """`written`: the table at `path` has these column values (in order) and nothing else."""

    def check(tmp: Path) -> None:
        import pandas as pd

        table = pd.read_csv(tmp / path)
        for column, values in expected.items():
            assert table[column].tolist() == values, (column, table[column].tolist())

    return check


def _similarity_is(expected: Callable[[Path], float]) -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        import pandas as pd

        table = pd.read_csv(tmp / "s.csv")
        assert len(table) == 1
        assert table["cka"].iloc[0] == pytest.approx(expected(tmp), rel=1e-9)

    return check


def _standard_cka(tmp: Path) -> float:
    x, _ = _embeddings(0)
    return _cka(x, _ids_b(x))


def _concat_is(tmp: Path) -> None:
    """c holds ids_a's rows, each part L2-normalised, ids_b's rows put in ids_a's order."""
    from imprint.io import load_embeddings

    x, y = _embeddings(0)
    b = _ids_b(x)
    expected = np.hstack(
        [x / np.linalg.norm(x, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)]
    )
    joined = load_embeddings(tmp / "c")
    np.testing.assert_allclose(joined.embeddings, expected, rtol=1e-6, atol=1e-7)
    assert joined.labels.tolist() == y.tolist()
    assert joined.ids.tolist() == list(range(100, 136))


def _ids(name: str, ids) -> Callable[[Path], None]:
    """Replace the image ids of ids_a.npz (`name` "ids_a.npz") with `ids`."""

    def make(tmp: Path) -> None:
        x, y = _embeddings(0)
        _npz(tmp / name, x, y, ids=np.asarray(ids))

    return make


def _mine_csv(tmp: Path) -> None:
    """A table of the user's, not one of this project's results tables."""
    _write_csv(tmp / "mine.csv", [{"sample": "a", "weight": 1.5}])


def _folder_holding_train(tmp: Path) -> None:
    (tmp / "r.csv").mkdir()
    (tmp / "r.csv" / "train.npz").write_bytes((tmp / "train.npz").read_bytes())


def _zero_rows(tmp: Path) -> None:
    x, y = _embeddings(0)
    x[[3, 7]] = 0.0
    _npz(tmp / "ids_a.npz", x, y, ids=np.arange(100, 136))


# The collapse metrics of within-class variability (undefined with one row per class).
WITHIN_CLASS = {
    *("nc1", "nc1_sample_weighted", "nc1_package", "nc1_reference_centring", "nc1_svd"),
    "nc1_quotient",
    *("vci", "vci_sample_weighted", "vci_reference_centring", "cdnv"),
}


def _strict_json(path: str, nulls: set[str]) -> Callable[[Path], None]:
    """`written`: strict JSON (no NaN or inf) whose null keys are exactly `nulls`."""

    def check(tmp: Path) -> None:
        def refuse(constant: str):
            raise AssertionError(f"{path} holds {constant}")

        data = json.loads((tmp / path).read_text(), parse_constant=refuse)
        assert {k for k, v in data.items() if v is None} == nulls

    return check


def _cd_outputs(prefix: str) -> Callable[[Path], None]:
    """Outputs of an earlier `imprint cd` run at `prefix`."""

    def make(tmp: Path) -> None:
        assert main(["cd", "scores.csv", "--out-prefix", prefix, "--groups", "dataset"]) == 0

    return make


def _user_file(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda t: (t / name).write_bytes(data)


def _symlink(name: str, target: str) -> Callable[[Path], None]:
    return lambda t: (t / name).symlink_to(target)


def _with_timestamp(tmp: Path) -> None:
    """An earlier set whose arrays Snakemake removed before a rerun, leaving its bookkeeping."""
    save_embeddings(tmp / "c", np.ones((2, 2)), [0, 1])
    for name in ("embeddings.npy", "labels.npy", "meta.json"):
        (tmp / "c" / name).unlink()
    (tmp / "c" / ".snakemake_timestamp").write_text("")


def _meta_dataset(tmp: Path) -> None:
    x, y = _embeddings(0)
    _npz(tmp / "other.npz", x, y, meta=json.dumps({"dataset": "cifar10", "split": "train"}))
    _npz(tmp / "mine.npz", x, y, meta=json.dumps({"dataset": "mnist", "split": "train"}))


def _matplotlib_figures(tmp: Path) -> None:
    """A researcher's own figures, drawn with matplotlib like the project's, without its mark."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = plt.figure()
    figure.savefig(tmp / "paper.pdf")
    figure.savefig(tmp / "paper.png")
    plt.close(figure)


def _folder_with(*files: str) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        (tmp / "proj").mkdir()
        for name in files:
            (tmp / "proj" / name).write_text("SECRET\n")

    return make


CASES += [
    # --- what only looks like an earlier output is kept
    Case(
        "cd-out-users-matplotlib-figures",
        [*CD[:2], "--out-prefix", "paper", "--groups", "dataset"],
        ["paper.pdf", "PDF figure", "--force"],
        _matplotlib_figures,
    ),
    Case(
        "probe-out-table-sharing-two-columns",
        probe(out="notes.csv"),
        ["notes.csv", "not a results table"],
        _write("notes.csv", "method,accuracy,notes\nmine,99,x\n"),
    ),
    Case(
        "grid-command-out-table-sharing-config-id",
        ["grid", "grid.yaml", "--out", "short.csv"],
        ["short.csv", "not a results table"],
        _write("short.csv", "config_id,my_notes\nabc,keep\n"),
    ),
    Case(
        "concat-out-users-npz",
        ["concat", "ids_a.npz", "ids_b", "--out", "mine.npz"],
        ["mine.npz", "not an embedding set"],
        lambda t: (t / "mine.npz").write_bytes((t / "train.npz").read_bytes()),
    ),
    Case(
        "concat-out-folder-of-hidden-user-file",
        ["concat", "ids_a.npz", "ids_b", "--out", "proj"],
        ["proj", ".env", "--force"],
        _folder_with(".env"),
    ),
    Case(
        "concat-out-folder-of-users-labels",
        ["concat", "ids_a.npz", "ids_b", "--out", "proj"],
        ["proj", "labels.npy"],
        _folder_with("labels.npy"),
    ),
    Case(
        "concat-out-current-folder",
        ["concat", "ids_a.npz", "ids_b", "--out", ".", "--force"],
        ["--out .", "holding"],
    ),
    Case(
        "concat-out-suffix-h5",
        ["concat", "ids_a.npz", "ids_b", "--out", "emb.h5"],
        ["emb.h5", "folder or .npz"],
    ),
    Case(
        "concat-out-symlinked-input-inside-forced",
        ["concat", "proj/lnk.npz", "ids_b", "--out", "proj", "--force"],
        ["proj", "holding", "proj/lnk.npz"],
        lambda t: (t / "proj").mkdir() or (t / "proj" / "lnk.npz").symlink_to("../ids_a.npz"),
    ),
    Case(
        "grid-command-out-huge-csv-field",
        ["grid", "grid.yaml", "--out", "big.csv"],
        ["big.csv", "not a results table"],
        _write("big.csv", '"' + "x" * 200_000 + '"\n'),
    ),
    Case(
        "cd-rerun-with-another-method",
        [*CD[:2], "--out-prefix", "mm", "--groups", "dataset"],
        [],
        lambda t: main(
            [
                "cd",
                "scores.csv",
                "--method",
                "dataset",
                "--groups",
                "config_id",
                "--out-prefix",
                "mm",
            ]
        ),
        rc=0,
    ),
    Case(
        "cd-out-prefix-is-a-folder",
        [*CD[:2], "--out-prefix", "cdp/", "--groups", "dataset"],
        ["--out-prefix cdp/", "prefix", "not a folder"],
    ),
    Case(
        "probe-temperature-underflows",
        probe("--temperature", "0.001"),
        ["--temperature", "0.001", ">= 0.0015", "overflow"],
    ),
    Case("task-empty-item", ev("--task", "0,,1"), ["--task", "'0,,1'", "empty item"]),
    Case(
        "collapse-zero-row",
        ["collapse", "z.npz"],
        ["z.npz", "all-zero", "class 0", "--no-l2"],
        lambda t: _npz(
            t / "z.npz",
            np.r_[np.zeros((1, 4)), np.eye(4)].astype(np.float32),
            np.array([0, 0, 1, 1, 1]),
        ),
    ),
    # --- earlier outputs are recognised by what they hold, not only their format
    Case(
        "cd-out-user-pdf",
        [*CD[:2], "--out-prefix", "paper", "--groups", "dataset"],
        ["paper.pdf", "not a PDF figure this command wrote", "--force"],
        _user_file("paper.pdf", b"%PDF-1.4 my thesis\n"),
    ),
    Case(
        "cd-out-user-summary",
        [*CD[:2], "--out-prefix", "paper", "--groups", "dataset"],
        ["paper_summary.txt", "methods compared over"],
        _user_file("paper_summary.txt", b"notes\n"),
    ),
    Case(
        "cd-out-user-ranks",
        [*CD[:2], "--out-prefix", "paper", "--groups", "dataset"],
        ["paper_ranks.csv", "average_rank"],
        _user_file("paper_ranks.csv", b"name,score\nalice,3\n"),
    ),
    Case(
        "cd-out-user-png",
        [*CD[:2], "--out-prefix", "paper", "--groups", "dataset"],
        ["paper.png", "PNG figure"],
        _user_file("paper.png", b"\x89PNG\r\n\x1a\nmine"),
    ),
    Case(
        "cd-out-earlier-cd",
        [*CD[:2], "--out-prefix", "paper", "--groups", "dataset"],
        [],
        _cd_outputs("paper"),
        rc=0,
    ),
    Case(
        "cd-out-user-pdf-forced",
        [*CD[:2], "--out-prefix", "paper", "--groups", "dataset", "--force"],
        [],
        _user_file("paper.pdf", b"%PDF-1.4 my thesis\n"),
        rc=0,
    ),
    Case(
        "grid-command-out-results-table",
        ["grid", "grid.yaml", "--out", "r.csv"],
        ["r.csv", "without accuracy"],
        lambda t: _write_csv(t / "r.csv", [{"config_id": "a", "accuracy": 1.0}]),
    ),
    Case(
        "evaluate-out-incremental-table",
        ev()[:-3] + ["--out", "r.csv", "-q"],
        ["r.csv", "without session"],
        lambda t: _write_csv(t / "r.csv", [{"config_id": "a", "accuracy": 1.0, "session": 1}]),
    ),
    Case(
        "incremental-out-results-table",
        [*inc("--sessions", "0,1/2")[:-5], "--out", "r.csv", "--sessions", "0,1/2"],
        ["r.csv", "not a results table"],
        lambda t: _write_csv(t / "r.csv", [{"config_id": "a", "accuracy": 1.0}]),
    ),
    Case(
        "collapse-out-transferability-json",
        ["collapse", "train.npz", "--out", "t.json"],
        ["t.json", "without logme"],
        _write("t.json", '{"logme": 1, "nc1": 2, "nc2_equinorm": 3}\n'),
    ),
    Case(
        "transferability-out-collapse-json",
        ["transferability", "train.npz", "--out", "c.json"],
        ["c.json", "logme"],
        _write("c.json", '{"nc1": 2, "nc2_equinorm": 3}\n'),
    ),
    # --- inputs stay inputs, even with --force
    Case(
        "concat-out-folder-of-inputs-forced",
        ["concat", "mine/a.npz", "ids_b", "--out", "mine", "--force"],
        ["mine", "holding", "mine/a.npz"],
        lambda t: (t / "mine" / "a.npz").write_bytes((t / "ids_a.npz").read_bytes()),
    ),
    Case("probe-out-is-input-forced", probe("--force", out="train.npz"), ["train.npz", "inputs"]),
    Case(
        "collapse-out-is-mapping-forced",
        ["collapse", "train.npz", "--mapping", "m.json", "--out", "m.json", "--force"],
        ["m.json", "inputs", "--mapping"],
        _write("m.json", '{"0": 0, "1": 1, "2": 1}\n'),
    ),
    Case(
        "probe-out-hard-link-to-input",
        probe(out="link.csv"),
        ["link.csv", "inputs", "--train"],
        lambda t: os.link(t / "train.npz", t / "link.csv"),
    ),
    Case(
        "probe-out-symlink-to-input",
        probe(out="link.csv"),
        ["link.csv", "inputs", "--train"],
        _symlink("link.csv", "train.npz"),
    ),
    # --- symbolic links and bookkeeping files at the output
    Case(
        "concat-out-symlink-to-a-set",
        ["concat", "ids_a.npz", "ids_b", "--out", "lnk"],
        ["lnk", "is a symbolic link (to set)", "--force"],
        lambda t: (
            save_embeddings(t / "set", np.ones((2, 2)), [0, 1]) and (t / "lnk").symlink_to("set")
        ),
    ),
    Case(
        "concat-out-earlier-set-rerun",
        ["concat", "ids_a.npz", "ids_b", "--out", "c"],
        [],
        _with_timestamp,
        rc=0,
        written=_concat_is,
    ),
    # --- numbers
    Case(
        "probe-seed-large",
        probe("--seed", "9007199254740993"),
        ["[100, 200]"],
        rc=0,
        warning=True,
        written=_table("p.csv", seed=[9007199254740993] * 3),
    ),
    Case(
        "collapse-classes-twice",
        ["collapse", "train.npz", "--classes", "0,0"],
        ["--classes", "distinct"],
    ),
    Case(
        "collapse-classes-words",
        ["collapse", "train.npz", "--classes", "abc"],
        ["--classes", "'abc'"],
    ),
    Case(
        "transferability-classes-twice",
        ["transferability", "train.npz", "--classes", "1,1"],
        ["--classes", "distinct"],
    ),
    # --- same images by metadata where no ids say so
    Case(
        "similarity-other-datasets-by-metadata",
        ["similarity", "other.npz", "mine.npz"],
        ["mine.npz", "other.npz", "dataset", "'mnist'", "'cifar10'"],
        _meta_dataset,
    ),
    Case(
        "collapse-one-row-per-class",
        ["collapse", "one.npz", "--out", "nc.json"],
        ["every class has 1 row", "nc1, ", "cdnv"],
        lambda t: _npz(t / "one.npz", np.eye(3, 4, dtype=np.float32), np.arange(3)),
        rc=0,
        warning=True,
        written=_strict_json(
            "nc.json",
            WITHIN_CLASS,
        ),
    ),
    Case(
        "collapse-class-means-coincide",
        ["collapse", "train.npz", "--out", "nc.json"],
        ["undefined on these data", "class means coincide", "nc1, ", "cdnv"],
        _set("train.npz", embeddings=np.ones((36, 8), np.float32)),
        rc=0,
        warning=True,
        written=_strict_json(
            "nc.json",
            WITHIN_CLASS
            | {
                "nc2_equinorm",
                "nc2_equiangular",
                "nc2_max_angle",
                "nc2_etf_error",
                "nc2g_log",
                "nc3_self_duality",
            },
        ),
    ),
    # --- imprint incremental: one way to give the sessions, each setting in its range
    Case(
        "inc-sessions-and-base",
        inc("--sessions", "0,1/2", "--base", "2"),
        ["--sessions", "excludes --base"],
    ),
    Case(
        "inc-sessions-and-task-base-way",
        inc("--sessions", "0,1/2", "--task", "0,1,2", "--base", "2", "--way", "1"),
        ["--sessions", "excludes --task, --base, --way"],
    ),
    Case(
        "inc-protocol-and-sessions",
        inc("--protocol", "fscil_cifar100", "--sessions", "0,1/2"),
        ["--protocol", "excludes --sessions"],
    ),
    Case(
        "inc-protocol-and-base-way",
        inc("--protocol", "fscil_cifar100", "--base", "2", "--way", "1"),
        ["--protocol", "excludes --base, --way"],
    ),
    Case(
        "inc-base-alone",
        inc("--base", "2"),
        ["--task", "give --protocol, --sessions, or --task with --base and --way"],
    ),
    Case(
        "inc-sessions-empty-last",
        inc("--sessions", "0,1/2/"),
        ["--sessions", "session 3 of 3 is empty"],
    ),
    Case(
        "inc-sessions-empty-middle",
        inc("--sessions", "0,1//2"),
        ["--sessions", "session 2 of 3 is empty"],
    ),
    Case(
        "inc-sessions-class-twice", inc("--sessions", "0,1/1,2"), ["--sessions", "one session only"]
    ),
    Case(
        "inc-shots-zero",
        inc("--sessions", "0,1/2", "--shots", "0"),
        ["--shots", "-1 (all rows) or >= 1", "got 0"],
    ),
    Case(
        "inc-shots-below-minus-one",
        inc("--sessions", "0,1/2", "--shots", "-2"),
        ["--shots", "got -2"],
    ),
    Case(
        "inc-base-shots-zero",
        inc("--sessions", "0,1/2", "--base-shots", "0"),
        ["--base-shots", "got 0"],
    ),
    Case(
        "inc-protocol-seed-negative",
        inc("--sessions", "0,1/2", "--protocol-seed", "-1"),
        ["--protocol-seed", ">= 0", "got -1"],
    ),
    Case(
        "inc-base-too-large",
        inc("--task", "0,1,2", "--base", "4", "--way", "1"),
        ["--base", "needs 2..3"],
    ),
    Case(
        "inc-way-does-not-split",
        inc("--task", "0,1,2", "--base", "2", "--way", "2"),
        ["--way", "do not split into sessions of 2"],
    ),
    Case("inc-session-class-absent", inc("--sessions", "0,1/7"), ["train.npz", "[7]"]),
    Case(
        "inc-shots-beyond-class",
        inc("--sessions", "0,1/2", "--shots", "20"),
        ["protocol shots = 20", "class 2 with 12 rows", "uses all its rows"],
        rc=0,
        warning=True,
    ),
    Case("inc-shots-as-many-as-rows", inc("--sessions", "0,1/2", "--shots", "12"), [], rc=0),
    Case(
        "inc-out-is-input",
        [*inc("--sessions", "0,1/2")[:-5], "--out", "train.npz", "--sessions", "0,1/2"],
        ["--out train.npz", "inputs", "--train"],
    ),
    Case(
        "inc-dims-differ",
        inc("--sessions", "0,1/2"),
        ["dimension", "8", "5"],
        _set("test.npz", embeddings=np.ones((15, 5), np.float32)),
    ),
    # --- output paths: never an input, never a folder of other things, never another format
    Case(
        "evaluate-out-is-input",
        ev(train="train_dir")[:-3] + ["--out", "train_dir"],
        ["--out train_dir", "inputs", "--train"],
    ),
    Case(
        "evaluate-out-inside-input",
        ev(train="train_dir")[:-3] + ["--out", "train_dir/r.csv"],
        ["train_dir/r.csv", "inside", "--train"],
    ),
    Case("evaluate-out-folder-of-files", ev()[:-3] + ["--out", "mine", "-q"], ["mine", ".csv"]),
    Case(
        "evaluate-out-csv-folder-of-files",
        ev()[:-3] + ["--out", "r.csv", "-q"],
        ["r.csv", "folder holding 1 other", "notes.txt", "--force"],
        lambda t: (t / "r.csv").mkdir() or (t / "r.csv" / "notes.txt").write_text("x"),
    ),
    Case(
        "evaluate-out-other-table",
        ev()[:-3] + ["--out", "mine.csv", "-q"],
        ["mine.csv", "config_id", "--force"],
        _mine_csv,
    ),
    Case(
        "evaluate-out-other-table-forced",
        ev()[:-3] + ["--out", "mine.csv", "-q", "--force"],
        [],
        _mine_csv,
        rc=0,
        written=_table("mine.csv", gen=["mean"] * 3),
    ),
    Case(
        "evaluate-out-earlier-results",
        ev()[:-3] + ["--out", "r.csv", "-q"],
        [],
        lambda t: main(ev()[:-3] + ["--out", "r.csv", "-q", "--tag", "run=1"]),
        rc=0,
        written=_table("r.csv", gen=["mean"] * 3),
    ),
    Case(
        "evaluate-out-is-grid",
        ev()[:-3] + ["--out", "grid.yaml"],
        ["grid.yaml", "inputs", "--grid"],
    ),
    Case(
        "evaluate-out-is-mapping",
        [*EV, "--mapping", "map.yaml", "--out", "map.yaml"],
        ["map.yaml", "inputs", "--mapping"],
    ),
    Case(
        "evaluate-out-folder-holds-input",
        ev(train="r.csv/train.npz")[:-3] + ["--out", "r.csv"],
        ["r.csv", "holding", "r.csv/train.npz"],
        _folder_holding_train,
    ),
    Case("probe-out-is-input", probe(out="train.npz"), ["--out train.npz", "inputs", "--train"]),
    Case("probe-out-folder-of-files", probe(out="mine"), ["--out mine", ".csv"]),
    Case(
        "probe-out-read-only-dir",
        probe(out="ro/p.csv"),
        ["ro/p.csv", "Permission denied"],
        lambda t: _read_only_dir(t / "ro"),
    ),
    Case(
        "probe-out-parent-is-a-file",
        probe(out="train.npz/p.csv"),
        ["train.npz/p.csv", "not a folder"],
    ),
    Case("probe-out-other-table", probe(out="scores.csv"), ["scores.csv", "method", "--force"]),
    Case(
        "collapse-out-is-input",
        ["collapse", "train_dir", "--out", "train_dir"],
        ["train_dir", "inputs"],
    ),
    Case("collapse-out-suffix", ["collapse", "train.npz", "--out", "nc.csv"], ["nc.csv", ".json"]),
    Case(
        "collapse-out-other-json",
        ["collapse", "train.npz", "--out", "o.json"],
        ["o.json", "nc1", "--force"],
        _write("o.json", '{"mine": 1}\n'),
    ),
    Case(
        "similarity-out-is-input",
        ["similarity", "ids_a.npz", "ids_b", "--out", "ids_b"],
        ["--out ids_b", "inputs"],
    ),
    Case(
        "similarity-out-suffix",
        ["similarity", "ids_a.npz", "ids_b", "--out", "s.json"],
        ["s.json", ".csv"],
    ),
    Case(
        "similarity-out-folder-of-files",
        ["similarity", "ids_a.npz", "ids_b", "--out", "s.csv"],
        ["s.csv", "folder holding"],
        lambda t: (t / "s.csv").mkdir() or (t / "s.csv" / "x").write_text("x"),
    ),
    Case(
        "concat-out-is-input",
        ["concat", "ids_a.npz", "ids_b", "--out", "ids_b"],
        ["--out ids_b", "inputs", "part"],
    ),
    Case(
        "concat-out-inside-input",
        ["concat", "ids_a.npz", "ids_b", "--out", "ids_b/c"],
        ["ids_b/c", "inside"],
    ),
    Case(
        "concat-out-suffix",
        ["concat", "ids_a.npz", "ids_b", "--out", "c.csv"],
        ["c.csv", "folder or .npz", ".csv"],
    ),
    Case(
        "concat-out-folder-of-files",
        ["concat", "ids_a.npz", "ids_b", "--out", "mine"],
        ["mine", "notes.txt", "--force"],
    ),
    Case(
        "concat-out-folder-forced",
        ["concat", "ids_a.npz", "ids_b", "--out", "c", "--force"],
        [],
        lambda t: (t / "c").mkdir() or (t / "c" / "x").write_text("x"),
        rc=0,
        written=_concat_is,
    ),
    Case(
        "concat-out-is-a-file",
        ["concat", "ids_a.npz", "ids_b", "--out", "c"],
        ["c", "exists", "embedding set"],
        _write("c", "x"),
    ),
    Case(
        "concat-out-earlier-set",
        ["concat", "ids_a.npz", "ids_b", "--out", "c"],
        [],
        lambda t: main(["concat", "ids_a.npz", "ids_b", "--out", "c", "--normalise", "none"]),
        rc=0,
        written=_concat_is,
    ),
    Case(
        "grid-command-out-is-input",
        ["grid", "grid.yaml", "--out", "grid.yaml"],
        ["grid.yaml", "inputs"],
    ),
    Case(
        "grid-command-out-other-table",
        ["grid", "grid.yaml", "--out", "mine.csv"],
        ["mine.csv", "config_id", "--force"],
        _mine_csv,
    ),
    Case(
        "cd-out-is-input",
        ["cd", "s_ranks.csv", "--out-prefix", "s", "--groups", "dataset"],
        ["--out-prefix s_ranks.csv", "inputs"],
        lambda t: (t / "s_ranks.csv").write_bytes((t / "scores.csv").read_bytes()),
    ),
    Case(
        "cd-out-folder-of-files",
        [*CD[:2], "--out-prefix", "mine/../x", "--groups", "dataset"],
        ["x_summary.txt", "folder"],
        lambda t: (t / "x_summary.txt").mkdir() or (t / "x_summary.txt" / "y").write_text("y"),
    ),
    # --- probe: numbers in range, named by their flag; the pair's widths
    Case(
        "probe-temperature-nan",
        probe("--temperature", "nan"),
        ["--temperature", "nan", ">= 0.0015"],
    ),
    Case("probe-temperature-zero", probe("--temperature", "0"), ["--temperature", "0"]),
    Case("probe-temperature-inf", probe("--temperature", "inf"), ["--temperature", "inf"]),
    Case("probe-penalty-inf", probe("--penalties", "inf"), ["--penalties", "inf"]),
    Case("probe-penalty-nan", probe("--penalties", "1,nan"), ["--penalties", "nan"]),
    Case("probe-penalty-huge", probe("--penalties", "1e300"), ["--penalties", "1e300", "<= 1e+15"]),
    Case("probe-penalty-twice", probe("--penalties", "1,1"), ["--penalties", "twice"]),
    Case(
        "probe-knn-k-beyond-rows",
        probe("--knn-k", "5,200"),
        ["--knn-k", "[200]", "36 training rows"],
    ),
    Case("probe-knn-k-fraction", probe("--knn-k", "2.5"), ["--knn-k", "'2.5'", "integer"]),
    Case(
        "probe-default-ks-beyond-rows",
        probe(),
        ["[100, 200]", "36 training rows", "[10, 20]"],
        rc=0,
        warning=True,
        written=_table("p.csv", method=["linear_probe", "knn", "knn"], k=[-1, 10, 20]),
    ),
    Case("probe-seed-negative", probe("--seed", "-1"), ["--seed", "-1", ">= 0"]),
    Case(
        "probe-dims-differ",
        probe(),
        ["dimension", "8", "5"],
        _set("test.npz", embeddings=np.ones((15, 5), np.float32)),
    ),
    Case("probe-temperature-words", probe("--temperature", "warm"), ["--temperature", "warm"]),
    # --- similarity: rows paired by image id
    Case(
        "similarity-same-images-other-order",
        ["similarity", "ids_a.npz", "ids_b", "--out", "s.csv"],
        [],
        rc=0,
        written=_similarity_is(_standard_cka),
    ),
    Case(
        "similarity-other-images-by-id",
        ["similarity", "ids_a.npz", "ids_b"],
        ["ids_b", "ids_a.npz", "not embeddings of the same images", "1 image id(s) only"],
        _ids("ids_a.npz", np.r_[np.arange(100, 135), 999]),
    ),
    Case(
        "similarity-same-file-twice",
        ["similarity", "ids_a.npz", "./ids_a.npz"],
        ["ids_a.npz", "given twice"],
    ),
    Case(
        "similarity-ids-on-one-side",
        ["similarity", "ids_a.npz", "train.npz", "--out", "s.csv"],
        ["train.npz", "no image ids", "position"],
        rc=0,
        warning=True,
        written=_similarity_is(lambda t: 1.0),
    ),
    Case(
        "similarity-label-disagrees",
        ["similarity", "ids_a.npz", "ids_b"],
        ["ids_b", "labels image id 112 1", "ids_a.npz", "0"],
        _ids("ids_a.npz", np.r_[112, np.arange(101, 112), 100, np.arange(113, 136)]),
    ),
    # --- concat
    Case(
        "concat-same-part-twice",
        ["concat", "ids_a.npz", "ids_a.npz", "--out", "c"],
        ["ids_a.npz", "given twice"],
    ),
    Case(
        "concat-other-images",
        ["concat", "ids_a.npz", "ids_b", "--out", "c"],
        ["not embeddings of the same images"],
        _ids("ids_a.npz", np.arange(36)),
    ),
    Case(
        "concat-zero-rows",
        ["concat", "ids_a.npz", "ids_b", "--out", "c"],
        ["ids_a.npz", "2 row(s) are all zero", "[103, 107]"],
        _zero_rows,
        rc=0,
        warning=True,
    ),
    Case(
        "concat-without-ids",
        ["concat", "train.npz", "ids_b", "--out", "c"],
        ["train.npz", "no image ids"],
    ),
]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _digests(root: Path) -> dict[str, str]:
    """Every path below `root` with its bytes' SHA-256 (folders as such)."""
    import hashlib

    return {
        str(p.relative_to(root)): "folder"
        if p.is_dir()
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
    }


def _under(path: str, outputs: list[str]) -> bool:
    """`path` is one of the outputs or inside one (an output folder is written as a whole)."""
    return any(path == o or path.startswith(o.rstrip("/") + "/") for o in outputs)


def _changed(before: dict[str, str], after: dict[str, str], outputs: list[str]) -> list[str]:
    """Paths that existed before and differ or are gone, except the outputs."""
    return sorted(p for p, d in before.items() if not _under(p, outputs) and after.get(p) != d)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_by_name(case: Case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _standard_files(tmp_path)
    if case.make is not None:
        case.make(tmp_path)
    before = _digests(tmp_path)
    if "read-only" in case.id and os.geteuid() == 0:
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
    after = _digests(tmp_path)
    assert not _changed(before, after, case.outputs()), (
        f"changed: {_changed(before, after, case.outputs())}"
    )
    if case.rc != 0:
        assert err.count("\n") == 1, f"the error is not one line:\n{err}"
        assert after == before, f"left behind or changed: {sorted(set(after) ^ set(before))}"
    else:
        new = [p for p in set(after) - set(before) if not _under(p, case.outputs())]
        assert not new, f"written beside the outputs: {sorted(new)}"
        if case.written is not None:
            case.written(tmp_path)


def test_the_table_has_forty_cases_or_more():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


# Every command that writes, as argv for an output `out`; its first input is `the input`.
WRITERS = {
    "evaluate": (lambda out: ev()[:-3] + ["--out", out, "-q"], "train.npz", ".csv"),
    "incremental": (
        lambda out: (
            ["incremental", "--train", "train.npz", "--test", "test.npz"]
            + ["--grid", "grid.yaml", "--sessions", "0,1/2", "--out", out, "-q"]
        ),
        "test.npz",
        ".csv",
    ),
    "probe": (lambda out: probe(out=out), "train.npz", ".csv"),
    "transferability": (
        lambda out: ["transferability", "train.npz", "--out", out],
        "train.npz",
        ".json",
    ),
    "similarity": (lambda out: ["similarity", "ids_a.npz", "ids_b", "--out", out], "ids_b", ".csv"),
    "concat": (lambda out: ["concat", "ids_a.npz", "ids_b", "--out", out], "ids_b", ""),
    "collapse": (lambda out: ["collapse", "train.npz", "--out", out], "train.npz", ".json"),
    "grid": (lambda out: ["grid", "grid.yaml", "--out", out], "grid.yaml", ".csv"),
    "cd": (
        lambda out: [
            "cd",
            "s_ranks.csv",
            "--groups",
            "dataset",
            "--out-prefix",
            out[: -len("_ranks.csv")],
        ],
        "s_ranks.csv",
        "_ranks.csv",
    ),
}
# A file each command reads, to link to (the folder inputs cannot be hard-linked).
FILE_INPUT = {"similarity": "ids_a.npz", "concat": "ids_a.npz"}
TARGETS = (
    "its input",
    "a hard link to its input",
    "a symbolic link to its input",
    "a folder of the user's",
    "a file's child",
    "a read-only folder",
)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("command", list(WRITERS))
def test_no_output_destroys_what_it_did_not_write(command, target, tmp_path, capsys, monkeypatch):
    """Each command's output pointed at its own input, at a link to it named as the output
    would be (so only the inode or the resolved path can stop the write, not the suffix), at a
    folder holding a user's file (named so too), inside a file and in a read-only folder:
    refused in one line naming the path, every byte left as it was."""
    if target == "a read-only folder" and os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    monkeypatch.chdir(tmp_path)
    _standard_files(tmp_path)
    (tmp_path / "s_ranks.csv").write_bytes((tmp_path / "scores.csv").read_bytes())
    argv, the_input, suffix = WRITERS[command]
    out = {
        "its input": the_input,
        "a hard link to its input": f"link{suffix}",
        "a symbolic link to its input": f"link{suffix}",
        "a folder of the user's": f"held{suffix}",
        "a file's child": f"grid.yaml/o{suffix}",
        "a read-only folder": f"ro/o{suffix}",
    }[target]
    if target == "a folder of the user's":
        (tmp_path / out).mkdir()
        (tmp_path / out / "results.csv").write_text("my,own\n1,2\n")
    if target == "a read-only folder":
        _read_only_dir(tmp_path / "ro")
    linked = tmp_path / FILE_INPUT.get(command, the_input)
    if target == "a hard link to its input":
        os.link(linked, tmp_path / out)
    if target == "a symbolic link to its input":
        (tmp_path / out).symlink_to(linked.name)
    before = _digests(tmp_path)
    try:
        rc = main(argv(out))
    except SystemExit as exit_:
        rc = exit_.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert out in err, err
    if "input" in target:  # refused as an input, not for some other reason it also has
        assert "this command's inputs" in err, err
    assert _digests(tmp_path) == before
