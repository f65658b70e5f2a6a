"""GEN text (zero-shot) and text_mean (not in the paper): results against a direct numpy
zero-shot classifier, text_mean's limits α = 0 (GEN mean) and α = 1 (GEN text), the text
proxies of merged labels, the grid's α, the file API, the CLI and class-incremental sessions."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch
from _results import DEFAULTS

from imprint.api.evaluation import evaluate_files
from imprint.cli.main import main
from imprint.engine.evaluate import evaluate_grid
from imprint.engine.generate import generate_proxies
from imprint.engine.grid import GridError, config_id, describe_config, expand_grid
from imprint.engine.incremental import evaluate_incremental, task_protocol
from imprint.engine.tasks import task_text_proxies
from imprint.io import save_embeddings

D, C = 16, 5
CLASSES = [3, 0, 4, 1, 2]  # task order differs from label order
# The text proxies' rows in an order of their own: they are found by label, not by position.
TEXT_LABELS = np.array([2, 0, 4, 1, 3])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(20240607)
    centres = rng.normal(size=(C, D))

    def rows(n):
        y = np.concatenate([np.arange(C), rng.integers(0, C, n - C)])
        x = centres[y] + 1.6 * rng.normal(size=(n, D)) + 0.5  # an offset: not centred
        return x.astype(np.float32), y

    xtr, ytr = rows(300)
    xte, yte = rows(250)
    # Text proxies near the centres (a different noise), unit length as CLIP's are stored.
    t = centres + 0.8 * rng.normal(size=(C, D))
    t = (t / np.linalg.norm(t, axis=1, keepdims=True)).astype(np.float32)  # row i: label i
    return xtr, ytr, xte, yte, t


def stored(t):
    """The text-proxy set (vectors, labels) with rows in TEXT_LABELS order."""
    return t[TEXT_LABELS], TEXT_LABELS.copy()


def zero_shot(x, t, classes):
    """Label predicted for each row of x: argmax over `classes` of x · t[class]."""
    classes = np.asarray(classes)
    scores = x.astype(np.float64) @ t[classes].astype(np.float64).T
    return classes[np.argmax(scores, axis=1)]


def f1_percent(pred, truth, classes):
    out = []
    for c in classes:
        tp = np.sum((pred == c) & (truth == c))
        denom = np.sum(pred == c) + np.sum(truth == c)
        out.append(100.0 * 2 * tp / denom if denom else 0.0)
    return np.array(out)


def check_row(row, pred, truth, classes):
    assert row["accuracy"] == pytest.approx(100.0 * np.mean(pred == truth), abs=1e-9)
    f1 = f1_percent(pred, truth, classes)
    np.testing.assert_allclose(json.loads(row["f1_per_class"]), f1, atol=1e-5)
    assert row["f1_macro"] == pytest.approx(f1.mean(), abs=1e-5)


def run(data, grid, classes=CLASSES, t=None, **kw):
    xtr, ytr, xte, yte, text = data
    t = text if t is None else t
    return evaluate_grid(
        xtr, ytr, xte, yte, expand_grid(grid), classes=classes, text_proxies=stored(t), **kw
    )


# --------------------------------------------------------------------------- GEN text


def test_text_is_the_numpy_zero_shot_under_every_norm(data):
    _, _, xte, yte, t = data
    grid = {
        "seeds": [1],
        "gen": ["text"],
        "norm_pre": ["none", "l2"],
        "norm_post": ["none", "l2"],
        "norm_inf": ["none", "l2"],
    }
    res = run(data, grid)
    # NORMpre l2 is kept only with NORMinf l2: (none, *, none|l2) and (l2, *, l2).
    assert len(res) == 6 and set(res["norm_post"]) == {"none", "l2"}
    pred = zero_shot(xte, t, CLASSES)
    acc = 100.0 * np.mean(pred == yte)
    assert 40.0 < acc < 100.0  # neither trivial nor hopeless: a wrong mapping shows
    for _, row in res.iterrows():
        check_row(row, pred, yte, CLASSES)
    assert (res["n_proxies"] == C).all()
    assert (res["alpha"] == -1.0).all() and (res["k"] == 1).all()


def test_text_reads_no_training_rows_few_shot_gives_the_same(data):
    _, _, xte, yte, t = data
    res = run(data, {"seeds": [1, 2], "gen": ["text"], "fewshot": [-1, 2]})
    assert sorted(res["fewshot"]) == [-1, -1, 2, 2]
    pred = zero_shot(xte, t, CLASSES)
    for _, row in res.iterrows():
        check_row(row, pred, yte, CLASSES)


def test_norm_post_l2_normalises_text_proxies_of_other_lengths(data):
    # Stored proxies of different lengths: NORMpost none reads x·t, l2 reads x·t/‖t‖.
    _, _, xte, yte, t = data
    scaled = (t * np.array([[0.2], [3.0], [1.0], [0.5], [2.0]])).astype(np.float32)
    plain, unit = zero_shot(xte, scaled, CLASSES), zero_shot(xte, t, CLASSES)
    assert np.any(plain != unit)  # the two readings differ on these data
    res = run(data, {"seeds": [1], "gen": ["text"], "norm_post": ["none", "l2"]}, t=scaled)
    by_post = res.set_index("norm_post")
    check_row(by_post.loc["none"], plain, yte, CLASSES)
    check_row(by_post.loc["l2"], unit, yte, CLASSES)


def test_task_of_some_classes_argmax_over_them_only(data):
    _, _, xte, yte, t = data
    classes = [4, 1]
    res = run(data, {"seeds": [1], "gen": ["text"]}, classes=classes)
    keep = np.isin(yte, classes)
    check_row(res.iloc[0], zero_shot(xte[keep], t, classes), yte[keep], classes)


# --------------------------------------------------------------------------- GEN text_mean


def _task_samples(data, classes=CLASSES):
    xtr, ytr, *_ = data
    return [torch.from_numpy(xtr[ytr == c]) for c in classes]


def _task_texts(t, classes=CLASSES):
    return [torch.from_numpy(t[c : c + 1].copy()) for c in classes]


def test_text_mean_alpha_0_is_gen_mean_bit_for_bit(data):
    samples = _task_samples(data)
    mean = generate_proxies(samples, "mean", 1, 0)
    mixed = generate_proxies(samples, "text_mean", 1, 0, text=_task_texts(data[4]), alpha=0.0)
    assert len(mixed) == C
    for m, p in zip(mean, mixed, strict=True):
        assert p.dtype == torch.float32 and torch.equal(m, p)


def test_text_mean_alpha_1_is_gen_text_and_between_the_mix(data):
    samples, texts = _task_samples(data), _task_texts(data[4])
    one = generate_proxies(samples, "text_mean", 1, 0, text=texts, alpha=1.0)
    for t, p in zip(texts, one, strict=True):
        torch.testing.assert_close(p, t, rtol=0, atol=0)
    mixed = generate_proxies(samples, "text_mean", 1, 0, text=texts, alpha=0.3)
    for s, t, p in zip(samples, texts, mixed, strict=True):
        expected = 0.3 * t.numpy().astype(np.float64) + 0.7 * s.numpy().astype(np.float64).mean(
            0, keepdims=True
        )
        assert p.shape == (1, D)
        np.testing.assert_allclose(p.numpy(), expected, rtol=1e-6, atol=1e-6)


def test_text_proxies_are_needed_and_counted(data):
    samples = _task_samples(data)
    for gen in ("text", "text_mean"):
        with pytest.raises(ValueError, match="text proxies"):
            generate_proxies(samples, gen, 1, 0, alpha=0.5)
        with pytest.raises(ValueError):
            generate_proxies(samples, gen, 1, 0, text=_task_texts(data[4])[:3], alpha=0.5)
    with pytest.raises(ValueError):
        generate_proxies(samples, "text_mean", 1, 0, text=_task_texts(data[4]), alpha=1.5)


NORMS = {"norm_pre": ["none", "l2"], "norm_post": ["none", "l2", "quantile"]}
NORMS |= {"norm_inf": ["none", "l2"]}


def test_text_mean_alpha_0_rows_equal_gen_mean_rows(data):
    res = run(data, {"seeds": [1], "gen": ["mean", "text_mean"], "alpha": [0.0], **NORMS})
    keys = ["norm_pre", "norm_post", "norm_inf"]
    mean = res[res["gen"] == "mean"].set_index(keys).sort_index()
    mixed = res[res["gen"] == "text_mean"].set_index(keys).sort_index()
    assert len(mean) == len(mixed) == 9
    assert (mixed["alpha"] == 0.0).all() and (mean["alpha"] == -1.0).all()
    assert list(mean.index) == list(mixed.index)
    np.testing.assert_array_equal(mixed["accuracy"], mean["accuracy"])
    assert list(mixed["f1_per_class"]) == list(mean["f1_per_class"])


def test_text_mean_alpha_1_predicts_as_gen_text(data):
    _, _, xte, yte, t = data
    grid = {"seeds": [1], "gen": ["text", "text_mean"], "alpha": [1.0], "norm_post": ["none"]}
    res = run(data, grid).set_index("gen")
    pred = zero_shot(xte, t, CLASSES)
    check_row(res.loc["text_mean"], pred, yte, CLASSES)
    assert res.loc["text_mean", "accuracy"] == res.loc["text", "accuracy"]
    assert res.loc["text_mean", "f1_per_class"] == res.loc["text", "f1_per_class"]


@pytest.mark.parametrize("norm_pre", ["none", "l2"])
def test_text_mean_alpha_between_is_the_numpy_mix(data, norm_pre):
    # The mean is GEN mean's on the NORMpre'd training rows; the text proxy enters as stored.
    xtr, ytr, xte, yte, t = data
    alpha = 0.3
    grid = {"seeds": [1], "gen": ["text_mean"], "alpha": [alpha], "norm_pre": [norm_pre]}
    grid["norm_inf"] = [norm_pre]
    res = run(data, grid)
    x = xtr.astype(np.float64)
    if norm_pre == "l2":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    proxies = np.stack(
        [alpha * t[c].astype(np.float64) + (1 - alpha) * x[ytr == c].mean(0) for c in CLASSES]
    )
    pred = np.asarray(CLASSES)[np.argmax(xte.astype(np.float64) @ proxies.T, axis=1)]
    assert np.any(pred != zero_shot(xte, t, CLASSES))  # not simply GEN text
    check_row(res.iloc[0], pred, yte, CLASSES)


# --------------------------------------------------------------------------- merged labels


def test_a_mapping_merges_text_proxies_by_their_normalised_mean():
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(5, 8)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 4])
    mapping = {0: 0, 1: 0, 2: 1, 3: 1, 4: 2}
    out = task_text_proxies(vectors, labels, [1, 2, 0], mapping)
    assert [o.shape for o in out] == [(1, 8)] * 3
    for got, rows in zip(out, ([2, 3], None, [0, 1]), strict=True):
        if rows is None:
            continue
        mean = vectors[rows].astype(np.float64).mean(0)
        expected = (mean / np.linalg.norm(mean)).astype(np.float32)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got[0], expected, rtol=1e-6)
        assert np.linalg.norm(got[0].astype(np.float64)) == pytest.approx(1.0, abs=1e-6)
    # A class of one label: its stored vector, bit for bit (not normalised).
    assert np.array_equal(out[1][0], vectors[4])
    assert np.linalg.norm(vectors[4]) != pytest.approx(1.0)


def test_a_class_of_one_label_is_its_vector_without_a_mapping():
    vectors = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    out = task_text_proxies(vectors, np.array([7, 5, 6]), [5, 7], None)
    assert np.array_equal(out[0], vectors[1:2]) and np.array_equal(out[1], vectors[0:1])


def test_a_class_without_a_text_proxy_is_refused():
    vectors = np.ones((2, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="no text proxy for class 3"):
        task_text_proxies(vectors, np.array([0, 1]), [0, 3], None)
    with pytest.raises(ValueError, match="no text proxy for class 1"):
        task_text_proxies(vectors, np.array([0, 1]), [0, 1], {0: 0, 1: 0})


def test_evaluate_grid_with_a_merging_mapping_reads_the_merged_proxies(data):
    _, _, xte, yte, t = data
    mapping = {0: 0, 1: 0, 2: 1, 3: 1, 4: 2}
    res = run(data, {"seeds": [1], "gen": ["text"]}, classes=[0, 1, 2], mapping=mapping)
    merged = []
    for rows in ([0, 1], [2, 3]):
        m = t[rows].astype(np.float64).mean(0)
        merged.append(m / np.linalg.norm(m))
    merged.append(t[4].astype(np.float64))
    pred = np.argmax(xte.astype(np.float64) @ np.stack(merged).T, axis=1)
    truth = np.array([mapping[int(v)] for v in yte])
    check_row(res.iloc[0], pred, truth, [0, 1, 2])


# --------------------------------------------------------------------------- the grid's α


OLD_KEYS = (
    "norm_pre",
    "presampling",
    "quantile_lo",
    "quantile_hi",
    "fewshot",
    "gen",
    "k",
    "norm_post",
    "norm_inf",
    "agg",
    "distance",
    "weighting",
    "m",
)
# The plain GEN mean run's values of the old keys (tests/_results.py's defaults).
MEAN_CONFIG = {k: DEFAULTS[k] for k in OLD_KEYS}


def sha1_id(values: dict) -> str:
    return hashlib.sha1(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


def test_alpha_is_a_placeholder_except_for_text_mean():
    grid = {"seeds": [1], "gen": ["mean", "text", "kmeans", "all"], "alpha": [0.25], "k": [2]}
    configs = expand_grid(grid, with_seeds=False)
    assert (configs["alpha"] == -1.0).all() and len(configs) == 4


def test_alpha_multiplies_text_mean_only_and_ids_are_the_old_ones():
    configs = expand_grid(
        {"seeds": [1], "gen": ["mean", "text_mean", "text"], "alpha": [0, 0.5]}, with_seeds=False
    )
    assert len(configs) == 4  # mean once, text_mean per α, text once
    by = {(r["gen"], r["alpha"]): r for r in configs.to_dict("records")}
    assert set(by) == {("mean", -1.0), ("text", -1.0), ("text_mean", 0.0), ("text_mean", 0.5)}
    assert (
        len(expand_grid({"gen": ["mean", "text_mean"], "alpha": [0, 0.5]}, with_seeds=False)) == 3
    )
    # GEN mean's ID: the sha1 of the keys there were before α.
    assert by["mean", -1.0]["config_id"] == sha1_id(MEAN_CONFIG)
    assert config_id(by["mean", -1.0]) == sha1_id(MEAN_CONFIG)
    assert by["text", -1.0]["config_id"] == sha1_id(MEAN_CONFIG | {"gen": "text"})
    # text_mean's: α counts.
    for alpha in (0.0, 0.5):
        expected = sha1_id(MEAN_CONFIG | {"gen": "text_mean", "alpha": alpha})
        assert by["text_mean", alpha]["config_id"] == expected
    assert by["text_mean", 0.0]["config_id"] != by["text_mean", 0.5]["config_id"]
    assert configs["config_id"].nunique() == 4
    assert "text_mean(α=0.5)" in describe_config(by["text_mean", 0.5])
    assert "α" not in describe_config(by["mean", -1.0])


def test_old_ids_of_other_gens_ignore_alpha():
    grid = {"seeds": [1], "gen": ["kmeans"], "k": [3], "norm_pre": ["l2"], "norm_inf": ["l2"]}
    row = expand_grid(grid | {"alpha": [0.1]}, with_seeds=False).iloc[0]
    values = MEAN_CONFIG | {"gen": "kmeans", "k": 3, "norm_pre": "l2", "norm_inf": "l2"}
    assert row["config_id"] == sha1_id(values)
    assert row["config_id"] == expand_grid(grid, with_seeds=False).iloc[0]["config_id"]


@pytest.mark.parametrize("bad", [1.5, -0.1, "x", True, None])
def test_alpha_outside_0_1_is_refused(bad):
    with pytest.raises(GridError, match="alpha"):
        expand_grid({"gen": ["text_mean"], "alpha": [bad]})


def test_alpha_must_be_a_list():
    with pytest.raises(GridError, match="alpha"):
        expand_grid({"gen": ["text_mean"], "alpha": 0.5})


def test_grid_default_alpha_is_a_half():
    configs = expand_grid({"gen": ["text_mean"]}, with_seeds=False)
    assert list(configs["alpha"]) == [0.5]


# --------------------------------------------------------------------------- evaluate_grid


def test_a_text_gen_without_text_proxies_is_refused(data):
    xtr, ytr, xte, yte, _ = data
    for gen in ("text", "text_mean"):
        with pytest.raises(ValueError, match="text proxies"):
            evaluate_grid(xtr, ytr, xte, yte, expand_grid({"gen": [gen]}), classes=CLASSES)


def test_text_proxies_of_another_dimension_are_refused(data):
    xtr, ytr, xte, yte, t = data
    wrong = np.ones((C, D + 1), dtype=np.float32)
    with pytest.raises(ValueError, match="dimension"):
        evaluate_grid(
            xtr, ytr, xte, yte, expand_grid({"gen": ["text"]}), classes=CLASSES,
            text_proxies=(wrong, np.arange(C)),
        )  # fmt: skip


def test_text_proxies_missing_a_task_class_are_refused(data):
    xtr, ytr, xte, yte, t = data
    with pytest.raises(ValueError, match="no text proxy for class 4"):
        evaluate_grid(
            xtr, ytr, xte, yte, expand_grid({"gen": ["text"]}), classes=CLASSES,
            text_proxies=(t[:4], np.arange(4)),
        )  # fmt: skip


def test_a_grid_without_text_gens_ignores_text_proxies(data):
    xtr, ytr, xte, yte, t = data
    configs = expand_grid({"gen": ["mean"], "seeds": [1]})
    plain = evaluate_grid(xtr, ytr, xte, yte, configs, classes=CLASSES)
    with_text = evaluate_grid(xtr, ytr, xte, yte, configs, classes=CLASSES, text_proxies=stored(t))
    cols = ["config_id", "accuracy", "f1_per_class"]
    pd.testing.assert_frame_equal(plain[cols], with_text[cols])


# --------------------------------------------------------------------------- files and CLI


@pytest.fixture
def files(data, tmp_path):
    xtr, ytr, xte, yte, t = data
    save_embeddings(tmp_path / "train", xtr, ytr, {"backbone": "clip"})
    save_embeddings(tmp_path / "test", xte, yte, {"backbone": "clip"})
    vectors, labels = stored(t)
    save_embeddings(tmp_path / "text", vectors, labels, {"backbone": "clip"})
    (tmp_path / "grid.yaml").write_text("seeds: [1]\ngen: [text, mean]\n")
    return tmp_path


def test_evaluate_files_reads_a_text_proxy_directory(data, files):
    _, _, xte, yte, t = data
    out = files / "r.csv"
    table = evaluate_files(
        files / "train", files / "test", files / "grid.yaml", out, progress=False,
        text_proxies=files / "text",
    )  # fmt: skip
    row = table[table["gen"] == "text"].iloc[0]
    classes = list(range(C))  # the default task: every class, ascending
    check_row(row, zero_shot(xte, t, classes), yte, classes)
    written = pd.read_csv(out)
    assert written.loc[written["gen"] == "text", "accuracy"].iloc[0] == pytest.approx(
        row["accuracy"]
    )


def test_evaluate_files_without_text_proxies_names_the_flag(files):
    out = files / "r.csv"
    with pytest.raises(ValueError, match="--text-proxies"):
        evaluate_files(files / "train", files / "test", files / "grid.yaml", out, progress=False)
    assert not out.exists()
    # A grid without text GENs needs none.
    (files / "mean.yaml").write_text("seeds: [1]\ngen: [mean]\n")
    evaluate_files(files / "train", files / "test", files / "mean.yaml", out, progress=False)
    assert out.exists()


def test_cli_evaluate_with_text_proxies(data, files, capsys):
    _, _, xte, yte, t = data
    out = files / "R.csv"
    args = ["evaluate", "--train", str(files / "train"), "--test", str(files / "test")]
    args += ["--grid", str(files / "grid.yaml"), "--out", str(out), "-q"]
    assert main([*args, "--text-proxies", str(files / "text"), "--task", "3,0,4"]) == 0
    table = pd.read_csv(out)
    row = table[table["gen"] == "text"].iloc[0]
    classes = [3, 0, 4]
    keep = np.isin(yte, classes)
    check_row(row, zero_shot(xte[keep], t, classes), yte[keep], classes)
    out.unlink()
    capsys.readouterr()
    assert main(args) == 2
    assert "--text-proxies" in capsys.readouterr().err
    assert not out.exists()


def test_cli_incremental_with_text_proxies(data, files, capsys):
    _, _, xte, yte, t = data
    out = files / "inc.csv"
    (files / "text.yaml").write_text("seeds: [1]\ngen: [text]\n")
    args = ["incremental", "--train", str(files / "train"), "--test", str(files / "test")]
    args += ["--grid", str(files / "text.yaml"), "--out", str(out), "-q"]
    args += ["--task", "0,1,2,3,4", "--base", "3", "--way", "1"]
    assert main(args) == 2
    assert "--text-proxies" in capsys.readouterr().err
    assert main([*args, "--text-proxies", str(files / "text")]) == 0
    table = pd.read_csv(out)
    inc = table[table["protocol"] == "incremental"].set_index("session")
    for s in range(3):
        seen = list(range(3 + s))
        keep = np.isin(yte, seen)
        expected = 100.0 * np.mean(zero_shot(xte[keep], t, seen) == yte[keep])
        assert inc.loc[s, "accuracy"] == pytest.approx(expected)


# --------------------------------------------------------------------------- class-incremental


def test_incremental_text_sessions_are_the_zero_shot_of_the_seen_classes(data):
    xtr, ytr, xte, yte, t = data
    protocol = task_protocol({"base": 2, "way": 1}, CLASSES)
    assert protocol.sessions == ((3, 0), (4,), (1,), (2,))
    configs = expand_grid({"seeds": [1], "gen": ["text"], "norm_inf": ["none", "l2"]})
    res = evaluate_incremental(xtr, ytr, xte, yte, configs, protocol, text_proxies=stored(t))
    inc = res[res["protocol"] == "incremental"]
    assert sorted(inc["session"].unique()) == [0, 1, 2, 3]
    base = [3, 0]
    for s in range(4):
        seen = CLASSES[: 2 + s]
        keep = np.isin(yte, seen)  # the test rows of the classes seen so far
        pred = zero_shot(xte[keep], t, seen)
        truth = yte[keep]
        rows = inc[inc["session"] == s]
        assert len(rows) == 2
        for _, row in rows.iterrows():
            check_row(row, pred, truth, seen)
            assert row["n_seen_classes"] == len(seen)
            in_base = np.isin(truth, base)
            assert row["accuracy_base"] == pytest.approx(
                100.0 * np.mean(pred[in_base] == truth[in_base])
            )
            if s == 0:
                assert np.isnan(row["accuracy_new"])
            else:
                new = ~in_base
                assert row["accuracy_new"] == pytest.approx(
                    100.0 * np.mean(pred[new] == truth[new])
                )
    joint = res[res["protocol"] == "joint"]
    last = inc[inc["session"] == 3]
    np.testing.assert_array_equal(joint["accuracy"].to_numpy(), last["accuracy"].to_numpy())


def test_incremental_without_text_proxies_is_refused(data):
    xtr, ytr, xte, yte, _ = data
    protocol = task_protocol({"base": 2, "way": 1}, CLASSES)
    configs = expand_grid({"seeds": [1], "gen": ["text"]})
    with pytest.raises(ValueError, match="text proxies"):
        evaluate_incremental(xtr, ytr, xte, yte, configs, protocol)
