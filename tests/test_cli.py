"""`imprint collapse` and `imprint cd` on files, against direct computations."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import friedmanchisquare
from sklearn.datasets import load_digits

from imprint.cli.common import parse_tags
from imprint.cli.main import main


def test_collapse_command_matches_a_direct_nc1(tmp_path, capsys):
    x, y = load_digits(return_X_y=True)
    np.savez(tmp_path / "d.npz", embeddings=x.astype(np.float32), labels=y)
    assert main(["collapse", str(tmp_path / "d.npz"), "--out", str(tmp_path / "nc.json")]) == 0
    metrics = json.loads((tmp_path / "nc.json").read_text())
    capsys.readouterr()
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    mu = xn.mean(0)
    means = np.stack([xn[y == c].mean(0) for c in range(10)])
    # Sigma_W: the mean of the per-class covariances (SPEC §6).
    sw = sum(np.cov(xn[y == c], rowvar=False, bias=True) for c in range(10)) / 10
    sb = (means - mu).T @ (means - mu) / 10
    expected = np.trace(sw @ np.linalg.pinv(sb)) / 10
    assert abs(metrics["nc1"] - expected) / expected < 1e-6
    # A mapping merging digits into two labels is applied first.
    (tmp_path / "m.yaml").write_text("\n".join(f"{d}: {int(d >= 5)}" for d in range(10)))
    assert main(["collapse", str(tmp_path / "d.npz"), "--mapping", str(tmp_path / "m.yaml")]) == 0
    assert json.loads(capsys.readouterr().out)["n_classes"] == 2
    # A mapping that drops classes (as ImageNet's remappings): only the kept rows count.
    (tmp_path / "keep.yaml").write_text("3: 0\n8: 1\n")
    assert (
        main(["collapse", str(tmp_path / "d.npz"), "--mapping", str(tmp_path / "keep.yaml")]) == 0
    )
    kept = json.loads(capsys.readouterr().out)
    x2, y2 = xn[(y == 3) | (y == 8)], y[(y == 3) | (y == 8)]
    m2 = np.stack([x2[y2 == c].mean(0) for c in (3, 8)])
    sw2 = sum(np.cov(x2[y2 == c], rowvar=False, bias=True) for c in (3, 8)) / 2
    sb2 = (m2 - x2.mean(0)).T @ (m2 - x2.mean(0)) / 2
    expected2 = np.trace(sw2 @ np.linalg.pinv(sb2)) / 2
    assert kept["n_samples"] == len(y2) and abs(kept["nc1"] - expected2) / expected2 < 1e-6
    # NC5 against another file's global mean (here: the digits' own odd half as "OOD").
    odd = x[y % 2 == 1].astype(np.float32)
    np.savez(tmp_path / "ood.npz", embeddings=odd, labels=y[y % 2 == 1])
    args = ["collapse", str(tmp_path / "d.npz"), "--ood", str(tmp_path / "ood.npz")]
    assert main(args) == 0
    nc5 = json.loads(capsys.readouterr().out)["nc5_ood_orthogonality"]
    ood_mean = (odd / np.linalg.norm(odd, axis=1, keepdims=True)).mean(0)
    cos = [
        means[c] @ ood_mean / np.linalg.norm(means[c]) / np.linalg.norm(ood_mean) for c in range(10)
    ]
    assert nc5 == pytest.approx(np.mean(np.abs(cos)), rel=1e-6)


def test_cd_command_writes_tables_and_diagram(tmp_path):
    rng = np.random.default_rng(0)
    rows = [
        {"method": f"m{j}", "dataset": f"d{g}", "seed": s, "accuracy": 60 + 5 * j + rng.normal()}
        for j in range(4)
        for g in range(8)
        for s in range(3)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "r.csv", index=False)
    code = main(
        [
            "cd",
            str(tmp_path / "r.csv"),
            "--method",
            "method",
            "--groups",
            "dataset",
            "--seed",
            "seed",
            "--out-prefix",
            str(tmp_path / "cd"),
        ]
    )
    assert code == 0
    ranks = pd.read_csv(tmp_path / "cd_ranks.csv")
    assert ranks.method.tolist() == ["m3", "m2", "m1", "m0"]
    med = pd.DataFrame(rows).groupby(["dataset", "method"]).accuracy.median().unstack()
    stat, p = friedmanchisquare(*[med[c] for c in med.columns])
    summary = (tmp_path / "cd_summary.txt").read_text()
    assert f"{p:.3g}"[:4] in summary or p < 1e-3
    assert "Maximal groups no pair of which differs:" in summary
    for ext in ("pdf", "png"):
        assert (tmp_path / f"cd.{ext}").stat().st_size > 1000


def test_cd_command_names_a_missing_column(tmp_path, capsys):
    pd.DataFrame({"a": [1], "dataset": ["d"]}).to_csv(tmp_path / "r.csv", index=False)
    pd.DataFrame({"b": [1]}).to_csv(tmp_path / "s.csv", index=False)
    out = ["--out-prefix", str(tmp_path / "x")]
    assert main(["cd", str(tmp_path / "r.csv"), *out]) == 2
    assert "r.csv: no column(s) ['config_id', 'accuracy']" in capsys.readouterr().err
    assert main(["cd", str(tmp_path / "r.csv"), "--groups", "backbone,dataset", *out]) == 2
    assert "r.csv: no column(s) ['config_id', 'accuracy', 'backbone']" in capsys.readouterr().err
    assert main(["cd", str(tmp_path / "r.csv"), str(tmp_path / "s.csv"), *out]) == 2
    err = capsys.readouterr().err
    assert f"column 'dataset' is in some tables but not in {tmp_path / 's.csv'}" in err
    assert main(["cd", str(tmp_path / "s.csv"), *out]) == 2
    err = capsys.readouterr().err
    assert "none of the default group columns" in err and "--groups" in err


def test_evaluate_tags_then_cd_ranks_the_stacked_tables(tmp_path, capsys):
    # Bring-your-own flow: one tagged `imprint evaluate` table per dataset, ranked together.
    from scipy.stats import rankdata

    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    rng = np.random.default_rng(0)
    (tmp_path / "g.yaml").write_text(
        "seeds: [0]\ngen: [mean, all]\nagg: [max, mnn]\ndistance: [cosine]\nm: [-1, 7]\n"
    )
    tables = []
    for name, noise in [("clean", 0.0), ("noisy", 6.0), ("noisier", 9.0)]:
        xd = x + noise * rng.standard_normal(x.shape).astype(np.float32)
        np.savez(tmp_path / f"{name}_train.npz", embeddings=xd[:1200], labels=y[:1200])
        np.savez(tmp_path / f"{name}_test.npz", embeddings=xd[1200:], labels=y[1200:])
        tables.append(str(tmp_path / f"{name}.parquet"))
        args = ["--train", str(tmp_path / f"{name}_train.npz")]
        args += ["--test", str(tmp_path / f"{name}_test.npz"), "--grid", str(tmp_path / "g.yaml")]
        args += ["--tag", "backbone=pixels", "--tag", f"dataset={name}", "--out", tables[-1]]
        assert main(["evaluate", *args, "-q"]) == 0
        table = pd.read_parquet(tables[-1])
        assert list(table.columns[:2]) == ["backbone", "dataset"]
        assert set(table.dataset) == {name} and len(table) == 4
    capsys.readouterr()
    # Default groups: those of backbone, dataset, mapping, task the tables have.
    assert main(["cd", *tables, "--seed", "seed", "--out-prefix", str(tmp_path / "cd")]) == 0
    both = pd.concat([pd.read_parquet(t) for t in tables])
    scores = both.pivot(index="dataset", columns="config_id", values="accuracy")
    mean_rank = np.mean([rankdata(-row) for row in scores.to_numpy()], axis=0)
    expected = pd.Series(mean_rank, index=scores.columns)
    ranks = pd.read_csv(tmp_path / "cd_ranks.csv").set_index("method")
    assert len(ranks) == 4
    for method, rank in expected.items():
        assert ranks.loc[method].iloc[0] == pytest.approx(rank)

    def evaluate(*tags):
        args = ["--train", str(tmp_path / "clean_train.npz"), "--test"]
        args += [str(tmp_path / "clean_test.npz"), "--grid", str(tmp_path / "g.yaml")]
        code = main(["evaluate", *args, "--out", str(tmp_path / "o.csv"), "-q", *tags])
        return code, capsys.readouterr().err

    code, err = evaluate("--tag", "seed=3")
    assert code == 2 and "extra column(s) ['seed'] would replace result columns" in err
    code, err = evaluate("--tag", "dataset")
    assert code == 2 and "--tag 'dataset': expected KEY=VALUE" in err
    assert parse_tags([" dataset = mnist ", "task=1"]) == {"dataset": "mnist", "task": "1"}
    code, err = evaluate("--tag", "dataset=a", "--tag", "dataset=b")
    assert code == 2 and "--tag dataset given twice ('a' and 'b')" in err
    assert not (tmp_path / "o.csv").exists()


def test_cd_stacks_a_tag_read_back_as_a_number_with_its_text(tmp_path):
    # --tag task=1 is text in a Parquet table and a number once a CSV table is read back: one
    # voter either way. Seed 0 (Parquet) ranks a first, seed 1 (CSV) b; their medians rank b
    # first (1.5 against 2.0) as one voter, where two voters would tie the ranks at 1.5. Each
    # table holds the same rows for a second dataset, so there are two voters, not four.
    def rows(seed, a, b):
        return pd.DataFrame(
            {
                "dataset": ["d", "d", "e", "e"],
                "task": "1",
                "seed": seed,
                "config_id": ["a", "b"] * 2,
                "accuracy": [a, b] * 2,
            }
        )

    rows(0, 2.0, 1.0).to_parquet(tmp_path / "s0.parquet")
    rows(1, 1.0, 3.0).to_csv(tmp_path / "s1.csv", index=False)
    tables = [str(tmp_path / "s0.parquet"), str(tmp_path / "s1.csv")]
    assert main(["cd", *tables, "--seed", "seed", "--out-prefix", str(tmp_path / "cd")]) == 0
    ranks = pd.read_csv(tmp_path / "cd_ranks.csv").set_index("method").iloc[:, 0]
    assert ranks.to_dict() == {"b": 1.0, "a": 2.0}
    # An empty --groups names no voter columns: an error, not the default voters.
    assert main(["cd", *tables, "--groups", "", "--out-prefix", str(tmp_path / "e")]) == 2


def test_version_is_the_packages(capsys):
    import re

    import imprint

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"imprint {imprint.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", imprint.__version__)


def test_cd_max_methods_tests_only_the_best_by_average_rank(tmp_path):
    from scipy.stats import rankdata

    rng = np.random.default_rng(1)
    rows = [
        {"method": f"m{j}", "dataset": f"d{g}", "accuracy": 50 + 2 * j + 3 * rng.normal()}
        for j in range(7)
        for g in range(6)
    ]
    df = pd.DataFrame(rows)
    df.to_csv(tmp_path / "r.csv", index=False)
    args = ["cd", str(tmp_path / "r.csv"), "--method", "method", "--groups", "dataset"]
    assert main([*args, "--max-methods", "3", "--out-prefix", str(tmp_path / "cd")]) == 0
    scores = df.pivot(index="dataset", columns="method", values="accuracy")
    mean_rank = pd.Series(
        np.mean([rankdata(-row) for row in scores.to_numpy()], axis=0), index=scores.columns
    )
    best = set(mean_rank.sort_values(kind="stable").index[:3])
    tested = pd.read_csv(tmp_path / "cd_pvalues.csv")
    assert set(tested.method) == best and set(tested.columns[1:]) == best


def test_probe_transferability_and_similarity_commands_on_digits(tmp_path, capsys):

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    for name, rows in (("train", slice(0, 1200)), ("test", slice(1200, None))):
        np.savez(tmp_path / f"{name}.npz", embeddings=x[rows], labels=y[rows])
    np.savez(tmp_path / "sqrt.npz", embeddings=np.sqrt(x[:1200]), labels=y[:1200])
    out = tmp_path / "probe.csv"
    args = ["probe", "--train", str(tmp_path / "train.npz"), "--test", str(tmp_path / "test.npz")]
    assert main([*args, "--out", str(out), "--tag", "backbone=pixels"]) == 0
    table = pd.read_csv(out)
    assert table["method"].tolist() == ["linear_probe", "knn", "knn", "knn", "knn"]
    assert table["k"].tolist() == [-1, 10, 20, 100, 200] and (table["backbone"] == "pixels").all()
    assert len(json.loads(table["penalty_search"][0])) == 9
    assert (table["accuracy"] > 85).all()  # digits: a probe ~94 %, kNN ~93-97 %
    capsys.readouterr()
    assert main(["transferability", str(tmp_path / "train.npz")]) == 0
    estimates = json.loads(capsys.readouterr().out)
    assert set(estimates) == {
        "logme",
        "h_score",
        "loo_knn_accuracy",
        "ncti_etf",
        "ncti_ncc",
        "ncti_vc",
        "tmi",
        "nc1",
        "vci",
        "sfda",
        "nleep",
        "parc",
        "gbc",
        "ped",
        "embedding_size",
        "parameter_count",
        "n_classes",
        "n_samples",
    }
    assert estimates["n_classes"] == 10 and estimates["n_samples"] == 1200
    pairs = tmp_path / "cka.csv"
    assert (
        main(
            [
                "similarity",
                str(tmp_path / "train.npz"),
                str(tmp_path / "sqrt.npz"),
                "--out",
                str(pairs),
            ]
        )
        == 0
    )
    cka = pd.read_csv(pairs)
    assert len(cka) == 1 and 0.9 < cka["cka"][0] < 1.0


def test_concat_command_joins_by_image_id(tmp_path, capsys):
    from imprint.io import load_embeddings, save_embeddings

    x, y = load_digits(return_X_y=True)
    x = (x[:50] / 16.0).astype(np.float32)
    ids = np.arange(100, 150)
    save_embeddings(tmp_path / "a.npz", x, y[:50], ids=ids)
    order = np.random.default_rng(0).permutation(50)
    save_embeddings(tmp_path / "b.npz", np.sqrt(x[order]), y[:50][order], ids=ids[order])
    out = tmp_path / "ab"
    args = ["concat", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--out", str(out)]
    assert main([*args, "--normalise", "none"]) == 0
    joined = load_embeddings(out)
    np.testing.assert_array_equal(joined.embeddings, np.hstack([x, np.sqrt(x)]))
    assert "joined 2 embedding sets by image id: 50 rows" in capsys.readouterr().out
    save_embeddings(tmp_path / "c.npz", x, y[:50])  # no ids
    assert (
        main(["concat", str(tmp_path / "a.npz"), str(tmp_path / "c.npz"), "--out", str(out)]) == 2
    )
    assert "records no image ids" in capsys.readouterr().err
