"""Bring your own embeddings (.test/own_embeddings): a backbone with `embeddings:` goes through
the whole workflow.

Nothing is downloaded or extracted for it: the files are checked, copied into results/ and
imprinted like extracted ones, and the config's ls_lambda reaches GEN ls.
"""

import copy

import numpy as np
import pandas as pd
import pytest
from _snakemake import REPO, install_config, job_counts, load_config, snakemake
from _trees import digits_npz

from imprint.io import EmbeddingFileError, import_embeddings, load_embeddings, save_embeddings
from imprint.planning.checks import check_config
from imprint.planning.errors import ConfigError

CONFIG = load_config("own_embeddings")  # .test/own_embeddings/config.yaml
LAMBDA = CONFIG["backbones"]["my_fm"]["ls_lambda"]  # 50: ls differs from its small-λ solution


def _direct_predictions(xtr, ytr, xte, classes, lam=None):
    """Nearest class mean under the inner product, or ls's closed form (1/C) Mᵀ (XᵀX/n + λI)⁻¹."""
    xtr, ytr = xtr[np.isin(ytr, classes)], ytr[np.isin(ytr, classes)]
    means = np.stack([xtr[ytr == c].mean(axis=0) for c in classes])  # C × D
    if lam is None:
        w = means
    else:
        a = xtr.T @ xtr / len(xtr) + lam * np.eye(xtr.shape[1])
        w = np.linalg.solve(a, means.T).T / len(classes)
    return np.asarray(classes)[np.argmax(xte @ w.T, axis=1)]


@pytest.mark.slow
def test_own_embeddings_run_through_the_workflow(tmp_path):
    install_config("own_embeddings", tmp_path)
    missing = snakemake(tmp_path, "-n", check=False)
    assert missing.returncode != 0 and "emb/mydigits/train.npz" in missing.stdout + missing.stderr

    split = digits_npz(tmp_path / "emb/mydigits")
    run = snakemake(tmp_path)
    counts = job_counts(run.stdout + run.stderr)
    assert counts["import_embeddings"] == 2
    assert not {"prepare_dataset", "extract_embeddings"} & set(counts)

    train = load_embeddings(tmp_path / "results/embeddings/mydigits/my_fm/train")
    keep = split["train"][1] <= 5
    np.testing.assert_array_equal(train.labels, split["train"][1][keep])
    np.testing.assert_array_equal(train.embeddings, split["train"][0][keep].astype(np.float32))
    assert train.meta["backbone"] == "my_fm" and train.meta["imported_from"].endswith("train.npz")

    res = pd.read_parquet(tmp_path / "results/imprint/own.parquet")
    assert len(res) == 4 and set(res.backbone) == {"my_fm"}
    # Independent numpy on the float32 values the workflow stored.
    xtr = split["train"][0].astype(np.float32).astype(np.float64)
    xte = split["test"][0].astype(np.float32).astype(np.float64)
    ytr, yte = split["train"][1], split["test"][1]
    for task, classes in CONFIG["tasks"].items():
        rows = np.isin(yte, classes)
        for gen, lam in (("mean", None), ("ls", LAMBDA)):
            pred = _direct_predictions(xtr, ytr, xte[rows], classes, lam)
            expected = 100.0 * np.mean(pred == yte[rows])
            got = res.loc[(res.task == task) & (res.gen == gen), "accuracy"].item()
            assert got == pytest.approx(expected, abs=1e-9), (task, gen)
    small = _direct_predictions(xtr, ytr, xte, list(range(6)), 1e-4)
    assert not np.array_equal(small, _direct_predictions(xtr, ytr, xte, list(range(6)), LAMBDA))

    collapse = pd.read_csv(tmp_path / "results/collapse/collapse.csv")
    assert collapse.loc[0, "backbone"] == "my_fm" and collapse.loc[0, "n_classes"] == 6
    assert (tmp_path / "results/figures/own/accuracy_overview.png").exists()
    again = snakemake(tmp_path, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def _config(**changes):
    config = copy.deepcopy(CONFIG)
    for path, value in changes.items():
        *parents, key = path.split(".")
        node = config
        for p in parents:
            node = node[p]
        if value is None:
            node.pop(key)
        else:
            node[key] = value
    return config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"backbones.my_fm.embeddings": "emb/{dataset}.npz"}, "needs a {split} placeholder"),
        (
            {"backbones.my_fm.embeddings": "emb/{model}/{split}.npz"},
            "unknown placeholder(s) ['model']",
        ),
        ({"backbones.my_fm.embeddings": "emb/{split.npz"}, "emb/{split.npz"),
        ({"backbones.my_fm.ls_lambda": None}, "set backbones.my_fm.ls_lambda"),
        (
            {"backbones.pixels": {}, "experiments.own.backbones": ["my_fm", "pixels"]},
            "dataset 'mydigits' has no sources",
        ),
        (
            {
                "datasets.other": {},
                "backbones.my_fm.embeddings": "emb/{split}.npz",
                "experiments.own.datasets": ["mydigits", "other"],
            },
            "has no {dataset} placeholder",
        ),
    ],
)
def test_own_embeddings_config_errors_name_the_key(changes, message):
    with pytest.raises(ConfigError) as err:
        check_config(_config(**changes))
    assert message in str(err.value)


def test_a_single_dataset_needs_no_dataset_placeholder_and_no_lambda_without_ls():
    check_config(
        _config(
            **{
                "backbones.my_fm.embeddings": "emb/{split}.npz",
                "backbones.my_fm.ls_lambda": None,
                "experiments.own.grid": {"gen": ["mean", "kmeans"], "k": [1, 2]},
            }
        )
    )


def test_import_keeps_the_dataset_classes_and_names_missing_ones(tmp_path):
    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    src = save_embeddings(tmp_path / "in.npz", x, [0, 1, 2, 0, 1, 2], {"backbone": "theirs"})
    out = import_embeddings(src, tmp_path / "out", classes=[0, 2], meta={"backbone": "mine"})
    got = load_embeddings(out)
    np.testing.assert_array_equal(got.labels, [0, 2, 0, 2])
    np.testing.assert_array_equal(got.embeddings, x[[0, 2, 3, 5]].astype(np.float32))
    assert got.meta["backbone"] == "mine" and got.meta["imported_from"] == str(src)
    with pytest.raises(EmbeddingFileError, match=r"in\.npz: no rows for class\(es\) \[7\]"):
        import_embeddings(src, tmp_path / "out2", classes=[0, 7])
    assert not (tmp_path / "out2").exists()
    huge = tmp_path / "huge.npz"
    np.savez(huge, embeddings=np.array([[1e39, 0.0], [1.0, 2.0]]), labels=[0, 1])
    with pytest.raises(
        EmbeddingFileError, match=r"huge\.npz: values up to 1e\+39 .* overflow float32"
    ):
        import_embeddings(huge, tmp_path / "out3")
    assert not (tmp_path / "out3").exists()


@pytest.mark.slow
def test_the_own_embeddings_template_plans_on_stand_in_files(tmp_path):
    """workflow/configs/own_embeddings.yaml as shipped: the paper's grids on one model's files."""
    template = REPO / "workflow/configs/own_embeddings.yaml"
    digits_npz(tmp_path / "emb/my_fm/mydata")
    dry = snakemake(tmp_path, "-n", "--configfile", str(template))
    plan = job_counts(dry.stdout + dry.stderr)
    # 4 tasks for aggfixed, aggfocus and the oracle, 1 for fig6 and few-shot.
    assert plan["import_embeddings"] == 2 and plan["imprint_grid"] == 14
    assert plan["gather_results"] == 5 and plan["compute_collapse"] == 1
    assert plan["summarise_table1"] == 1
    assert not {"prepare_dataset", "extract_embeddings", "join_embeddings"} & set(plan)
