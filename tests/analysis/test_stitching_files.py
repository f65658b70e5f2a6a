"""Stitching on files (api/stitching.py, `imprint stitch`): rows paired by image id, other
images refused, outputs guarded, and the numbers against numpy; task-loss matching at a
reduced rank fitted in principal coordinates is the same affine map of the rank-r rows."""

import numpy as np
import pandas as pd
import pytest

from imprint.analysis.stitching import (
    mean_classifier,
    principal_axes,
    rank_approximation,
    rank_sensitivity,
)
from imprint.api.stitching import stitch_files
from imprint.cli.main import main
from imprint.io import save_embeddings


def _backbones(tmp_path, n_train=90, n_test=45):
    """Three backbones' embeddings of the same images (3 classes): B, a linear map of B and
    noise; each set's rows in its own order, with image ids."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 5)) * 4
    to_b, to_a = rng.normal(size=(5, 6)), rng.normal(size=(5, 8))  # each backbone's own view
    files = {}
    for split, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % 3
        latent = centres[y] + rng.normal(size=(n, 5))
        ids = np.arange(n) * 7 + (0 if split == "train" else 10_000)
        views = {
            "b": latent @ to_b,
            "a": latent @ to_a + 0.1 * rng.normal(size=(n, 8)),
            "noise": rng.normal(size=(n, 4)),
        }
        for name, x in views.items():
            order = rng.permutation(n)  # every file its own row order
            path = tmp_path / name / split
            save_embeddings(path, x[order].astype(np.float32), y[order], {}, ids=ids[order])
            files.setdefault(split, {})[name] = (path, x.astype(np.float32), y)
    return files


def _direct_mean_accuracy(a_train, b_train, y_train, a_test, y_test) -> float:
    """Least squares with a bias by numpy's lstsq, then B's unit class means of unit rows."""
    design = np.hstack([a_train, np.ones((len(a_train), 1))]).astype(np.float64)
    solution = np.linalg.lstsq(design, b_train.astype(np.float64), rcond=None)[0]
    mapped = np.hstack([a_test, np.ones((len(a_test), 1))]) @ solution
    unit = b_train / np.linalg.norm(b_train, axis=1, keepdims=True)
    means = np.stack([unit[y_train == c].mean(axis=0) for c in range(3)])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    return 100.0 * np.mean(np.argmax(mapped @ means.T, axis=1) == y_test)


def test_stitch_files_pairs_rows_by_image_id_and_matches_numpy(tmp_path):
    files = _backbones(tmp_path)
    names = ["a", "b", "noise"]
    train = [files["train"][n][0] for n in names]
    test = [files["test"][n][0] for n in names]
    table, ranks = stitch_files(
        train, test, tmp_path / "s.csv", tmp_path / "r.csv", names, rows=30, seed=1
    )
    assert len(table) == 6 * (3 * 2 + 2)  # pairs × (3 maps × 2 classifiers + 2 task-loss fits)
    assert set(table.matching) == {"direct", "direct_k", "orthogonal", "task_loss"}
    row = table[
        (table.source == "a")
        & (table.target == "b")
        & (table.matching == "direct")
        & (table.classifier == "mean")
    ].iloc[0]
    (_, a_train, y_train), (_, b_train, _) = files["train"]["a"], files["train"]["b"]
    _, a_test, y_test = files["test"]["a"]
    expected = _direct_mean_accuracy(a_train, b_train, y_train, a_test, y_test)
    assert row.stitched_accuracy == pytest.approx(expected)
    assert row.penalty == pytest.approx(row.target_accuracy - row.stitched_accuracy)
    assert (table[table.matching == "direct_k"].rows == 30).all()
    assert pd.read_csv(tmp_path / "s.csv").shape == table.shape
    assert set(ranks.classifier) == {"mean"} and set(ranks.source) == set(names)
    assert pd.read_csv(tmp_path / "r.csv").shape == ranks.shape


def test_stitching_other_images_or_one_backbone_is_refused(tmp_path):
    files = _backbones(tmp_path)
    other = tmp_path / "other/train"
    x, y = files["train"]["b"][1], files["train"]["b"][2]
    save_embeddings(other, x, y, {}, ids=np.arange(len(y)) + 1)  # one image not in the others
    a_train, a_test = files["train"]["a"][0], files["test"]["a"][0]
    with pytest.raises(ValueError, match="not embeddings of the same images|only in"):
        stitch_files([a_train, other], [a_test, files["test"]["b"][0]])
    with pytest.raises(ValueError, match="two or more backbones"):
        stitch_files([a_train], [a_test])
    both = ([a_train, files["train"]["b"][0]], [a_test, files["test"]["b"][0]])
    with pytest.warns(UserWarning, match="not fewer than the 90 training rows"):
        table, _ = stitch_files(*both, rows=90)
    assert "direct_k" not in set(table.matching)


def test_imprint_stitch_writes_its_tables_and_never_over_an_input(tmp_path, capsys):
    files = _backbones(tmp_path)
    train = [str(files["train"][n][0]) for n in ("a", "b")]
    test = [str(files["test"][n][0]) for n in ("a", "b")]
    args = ["stitch", "--train", *train, "--test", *test, "--names", "a", "b", "--rows", "0"]
    out = tmp_path / "stitch.csv"
    assert main([*args, "--out", str(out), "--ranks-out", str(tmp_path / "ranks.csv")]) == 0
    table = pd.read_csv(out)
    assert "direct_k" not in set(table.matching)  # --rows 0 leaves it out
    assert "a -> b direct:" in capsys.readouterr().out
    assert main([*args, "--out", str(files["train"]["a"][0] / "labels.npy")]) == 2
    assert "one of this command's inputs" in capsys.readouterr().err


def test_task_loss_at_a_reduced_rank_is_fitted_in_principal_coordinates(tmp_path):
    """Three classes whose centres span two directions: A's top two principal components keep
    them apart, so task-loss matching fitted in those coordinates (then turned into a map of
    the rank-2 rows) classifies as B does; a map with a wrong basis or offset would not. Direct
    matching from the same rank-2 rows cannot rebuild B's embeddings (its residual stays)."""
    files = _backbones(tmp_path)
    (_, a_train, y_train), (_, b_train, _) = files["train"]["a"], files["train"]["b"]
    (_, a_test, y_test), (_, b_test, _) = files["test"]["a"], files["test"]["b"]
    head = {"mean": mean_classifier(b_train, y_train)}
    rows = rank_sensitivity(
        a_train, a_test, b_train, b_test, y_train, y_test, ranks=[2, 8],
        matchings=("direct", "task_loss"), classifiers=head,
    )  # fmt: skip
    found = {(r["rank"], r["matching"]): r for r in rows}
    own = 100.0 * np.mean(head["mean"].predict(b_test) == y_test)
    assert own > 95
    assert found[2, "task_loss"]["stitched_accuracy"] >= own - 100 / len(y_test)
    assert found[2, "direct"]["residual"] > 2 * found[8, "direct"]["residual"]
    _, test_r = rank_approximation(a_train, a_test, 2, principal_axes(a_train))
    assert np.linalg.matrix_rank(test_r - principal_axes(a_train)[0], tol=1e-6) == 2


@pytest.mark.parametrize("norms", [("none", "none", "none"), ("l2", "none", "none")])
def test_the_imprinted_classifiers_norms_are_the_users(tmp_path, norms):
    """norms = (NORMpre, NORMpost, NORMinf) of the target's GEN mean classifier: with NORMpost
    and NORMinf none its scores are raw inner products with the (unit-row or raw) class means."""
    files = _backbones(tmp_path)
    names = ["a", "b"]
    table, _ = stitch_files(
        [files["train"][n][0] for n in names], [files["test"][n][0] for n in names],
        names=names, rows=None, norms=norms,
    )  # fmt: skip
    (_, a_train, y), (_, b_train, _) = files["train"]["a"], files["train"]["b"]
    (_, a_test, y_test), (_, b_test, _) = files["test"]["a"], files["test"]["b"]
    rows = b_train / np.linalg.norm(b_train, axis=1, keepdims=True) if norms[0] == "l2" else b_train
    means = np.stack([rows[y == c].mean(axis=0) for c in range(3)]).astype(np.float64)
    own = 100.0 * np.mean(np.argmax(b_test @ means.T, axis=1) == y_test)
    design = np.hstack([a_train, np.ones((len(a_train), 1))]).astype(np.float64)
    solution = np.linalg.lstsq(design, b_train.astype(np.float64), rcond=None)[0]
    mapped = np.hstack([a_test, np.ones((len(a_test), 1))]) @ solution
    stitched = 100.0 * np.mean(np.argmax(mapped @ means.T, axis=1) == y_test)
    row = table[
        (table.source == "a") & (table.matching == "direct") & (table.classifier == "mean")
    ].iloc[0]
    assert (row.target_accuracy, row.stitched_accuracy) == pytest.approx((own, stitched))
    with pytest.raises(ValueError, match="NORMpre, NORMpost, NORMinf"):
        mean_classifier(b_train, y, norms=("l2", "quantile", "l2"))
