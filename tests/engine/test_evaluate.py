"""The engine on whole tasks: results against direct computations, bad input, the CLI."""

import json
import pickle
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from _reference import ls_closed_form
from sklearn.datasets import load_digits
from sklearn.neighbors import NearestNeighbors

import imprint.engine.evaluate as evaluate_module
from imprint.cli.main import main
from imprint.engine.evaluate import RESULT_COLUMNS, SAMPLE_KEYS, evaluate_grid
from imprint.engine.grid import expand_grid
from imprint.io import EmbeddingFileError, load_embeddings, save_embeddings

TIMING = ["gen_seconds", "inference_seconds"]


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    rng = np.random.default_rng(0)
    perm = rng.permutation(len(x))
    return x[perm[:1200]], y[perm[:1200]], x[perm[1200:]], y[perm[1200:]]


def run(digits, grid, classes=tuple(range(10)), **kw):
    xtr, ytr, xte, yte = digits
    return evaluate_grid(
        xtr, ytr, xte, yte, expand_grid(grid), classes=list(classes), ls_lambda=1e-3, **kw
    )


def test_mean_max_is_nearest_class_mean_on_a_task(digits):
    xtr, ytr, xte, yte = digits
    classes = [7, 2, 5]  # task order decides the class index
    res = run(digits, {"gen": ["mean"], "seeds": [0]}, classes)
    means = np.stack([xtr[ytr == c].mean(0) for c in classes])
    keep = np.isin(yte, classes)
    pred = np.array(classes)[np.argmax(xte[keep] @ means.T, axis=1)]
    assert res.accuracy[0] == pytest.approx(100 * np.mean(pred == yte[keep]))
    assert res.n_proxies[0] == 3


def test_all_mnn_equals_sklearn_knn_classifier(digits):
    xtr, ytr, xte, yte = digits
    grid = {"gen": ["all"], "agg": ["mnn"], "distance": ["euclidean"], "m": [5], "seeds": [0]}
    res = run(digits, grid)
    ind = NearestNeighbors(n_neighbors=5).fit(xtr).kneighbors(xte, return_distance=False)
    pred = np.array([np.bincount(ytr[i], minlength=10).argmax() for i in ind])
    assert res.accuracy[0] == pytest.approx(100 * np.mean(pred == yte))


def test_mapping_merges_and_drops_labels(digits):
    xtr, ytr, xte, yte = digits
    mapping = {0: 0, 1: 0, 2: 1, 3: 1}  # 4..9 dropped
    res = evaluate_grid(
        xtr,
        ytr,
        xte,
        yte,
        expand_grid({"gen": ["mean"], "seeds": [0]}),
        classes=[0, 1],
        mapping=mapping,
    )
    keep = yte <= 3
    new_tr = np.where(ytr <= 1, 0, 1)[ytr <= 3]
    means = np.stack([xtr[ytr <= 3][new_tr == c].mean(0) for c in (0, 1)])
    pred = np.argmax(xte[keep] @ means.T, axis=1)
    assert res.accuracy[0] == pytest.approx(100 * np.mean(pred == (yte[keep] >= 2)))


def test_shared_work_gives_the_same_numbers_as_one_by_one(digits):
    grid = {
        "seeds": [3, 4],
        "norm_pre": ["none", "l2"],
        "norm_inf": ["none", "l2"],
        "gen": ["kmeans", "kmedoids", "random", "mean", "all", "ls"],
        "k": [1, 3],
        "norm_post": ["none", "l2", "quantile"],
        "agg": ["max", "mnn"],
        "distance": ["inner_product", "cosine", "manhattan"],
        "weighting": ["uniform", "weighted_by_distance"],
        "m": [-1, 1, 5],
    }
    configs = expand_grid(grid)
    xtr, ytr, xte, yte = digits
    together = evaluate_grid(xtr, ytr, xte, yte, configs, classes=[1, 2, 3, 4], ls_lambda=1e-3)
    sample = configs.sample(25, random_state=0)
    for i, row in sample.iterrows():
        alone = evaluate_grid(
            xtr, ytr, xte, yte, configs.loc[[i]], classes=[1, 2, 3, 4], ls_lambda=1e-3
        )
        assert alone.accuracy[0] == pytest.approx(together.accuracy[i], abs=1e-9), row.to_dict()


def test_gen_all_shares_one_product_across_normpre_and_equals_one_by_one(digits, monkeypatch):
    # GEN all's NORMpre l2 proxies are read as a view of the NORMpre none product, also after
    # few-shot draws; every configuration must equal its evaluation alone.
    aggs = [
        {"agg": ["max"], "distance": ["inner_product", "euclidean"]},
        {"agg": ["mnn"], "distance": ["cosine"], "m": [3]},
        {
            "agg": ["mnn"],
            "distance": ["euclidean"],
            "m": [4],
            "weighting": ["weighted_by_distance"],
        },
    ]
    parts = [
        {
            "seeds": [3],
            "gen": ["all"],
            "fewshot": [-1, 5],
            "norm_pre": [pre],
            "norm_inf": ["l2"] if pre == "l2" else ["none", "l2"],
            "norm_post": ["none", "l2", "quantile"],
            **agg,
        }
        for pre in ("none", "l2")
        for agg in aggs
    ]
    configs = expand_grid(parts)
    xtr, ytr, xte, yte = digits
    together = evaluate_grid(xtr, ytr, xte, yte, configs, classes=[0, 3, 5, 8])
    # Alone, each NORMpre presamples its own set and computes its own product.
    monkeypatch.setattr(
        evaluate_module, "_sample_groups", lambda rows: evaluate_module._group(rows, SAMPLE_KEYS)
    )
    for i in range(len(configs)):
        alone = evaluate_grid(xtr, ytr, xte, yte, configs.iloc[[i]], classes=[0, 3, 5, 8])
        assert alone.f1_per_class[0] == together.f1_per_class[i], configs.iloc[i].to_dict()


def test_same_seed_same_table_and_seeds_matter_only_where_random(digits):
    grid = {"seeds": [1, 2], "gen": ["random", "kmeans", "mean"], "k": [3], "fewshot": [-1, 5]}
    a, b = run(digits, grid), run(digits, grid)
    pd.testing.assert_frame_equal(a.drop(columns=TIMING), b.drop(columns=TIMING))
    assert list(a.columns) == RESULT_COLUMNS
    per_seed = a.pivot_table(index="config_id", columns="seed", values="accuracy")
    mean_all = a[(a.gen == "mean") & (a.fewshot == -1)].config_id.iloc[0]
    assert per_seed.loc[mean_all, 1] == per_seed.loc[mean_all, 2]


def picked_training_value(seeds, gen, fewshot):
    """Which class-0 training value (0..99) a one-proxy GEN imprinted, read off the accuracy.

    Class 0 trains on the values 0..99 (1-D, padded to 2-D), class 1 on copies of -1. Under
    1-nearest-proxy, the class-0 test point j/2 - 0.4 (j = 0..199) is right iff j >= the
    picked value p, so 200 - p of them are right; 10 class-1 test points at -1 always are.
    """
    pad = lambda v: np.stack([v, np.zeros_like(v)], axis=1).astype(np.float32)  # noqa: E731
    xtr = pad(np.concatenate([np.arange(100.0), np.full(100, -1.0)]))
    ytr = np.repeat([0, 1], 100)
    xte = pad(np.concatenate([np.arange(200) / 2 - 0.4, np.full(10, -1.0)]))
    yte = np.repeat([0, 1], [200, 10])
    grid = {"gen": [gen], "k": [1], "fewshot": [fewshot], "distance": ["euclidean"]}
    res = evaluate_grid(xtr, ytr, xte, yte, expand_grid({**grid, "seeds": seeds}), classes=[0, 1])
    right = np.rint(res.accuracy.to_numpy() * 210 / 100).astype(int) - 10
    return 200 - right


def test_few_shot_and_gen_draws_of_one_seed_are_independent():
    from scipy.stats import chisquare

    seeds = list(range(2000))
    # Without few-shot sampling the pick is the first draw of the seed's stream: uniform.
    alone = picked_training_value(seeds, "random", -1)
    # A random proxy out of a random 20-sample few-shot draw is still a uniform pick of the
    # 100 values, if GEN continues the stream rather than replaying the few-shot draw's seed.
    after_fewshot = picked_training_value(seeds, "random", 20)
    fps_after_fewshot = picked_training_value(seeds, "fps", 20)
    for picks in (alone, after_fewshot, fps_after_fewshot):
        assert picks.min() >= 0 and picks.max() <= 99
        assert chisquare(np.bincount(picks, minlength=100)).pvalue > 1e-3
    # ...and a different draw from the one made without few-shot sampling.
    assert (after_fewshot != alone).mean() > 0.9


def test_ls_precision_reaches_the_solver_and_is_checked(digits, monkeypatch):
    import imprint.engine.generate

    solve = imprint.engine.generate.least_squares_weights
    asked = []

    def recording(groups, ls_lambda, precision="float64", system=None):
        asked.append(precision)
        return solve(groups, ls_lambda, precision, system)

    monkeypatch.setattr(imprint.engine.generate, "least_squares_weights", recording)
    xtr, ytr, xte, yte = digits
    classes = [0, 3, 8]
    groups = [torch.from_numpy(xtr[ytr == c]) for c in classes]
    task = np.isin(yte, classes)
    for precision in ("float64", "float32"):
        asked.clear()
        grid = {"gen": ["ls", "kls"], "k": [2], "seeds": [0]}
        res = run(digits, grid, classes, ls_precision=precision)
        assert asked == [precision, precision]  # ls and kls
        # The ls proxies scored by the max inner product, written out directly: float64 as
        # numpy's closed form; float32 as the float32 solver, itself checked against a direct
        # float32 computation in test_components (here only its selection is at stake).
        if precision == "float64":
            w = ls_closed_form([g.numpy() for g in groups], 1e-3)
        else:
            w = solve(groups, 1e-3, precision).double().numpy()
        pred = np.asarray(classes)[np.argmax(xte[task] @ w.T, axis=1)]
        ls_row = res[res.gen == "ls"].iloc[0]
        assert ls_row.accuracy == pytest.approx(100 * np.mean(pred == yte[task]), abs=1e-9)
    with pytest.raises(
        ValueError, match="unknown ls_precision 'double'; allowed: float64, float32"
    ):
        run(digits, {"gen": ["mean"], "seeds": [0]}, classes, ls_precision="double")


def test_kmeans_kls_and_ls_share_fits_and_the_system_and_equal_the_references(digits, monkeypatch):
    from sklearn.cluster import KMeans

    import imprint.engine.generate as generate_module

    fits, systems = [], []
    fit, system = generate_module._kmeans, generate_module.ls_system
    monkeypatch.setattr(
        generate_module, "_kmeans", lambda x, k, seed: fits.append(k) or fit(x, k, seed)
    )
    monkeypatch.setattr(
        generate_module, "ls_system", lambda rows, lam: systems.append(lam) or system(rows, lam)
    )
    xtr, ytr, xte, yte = digits
    classes = [0, 3, 8]
    grid = {"gen": ["kmeans", "kls", "ls"], "k": [3], "seeds": [5]}
    res = run(digits, grid, classes)
    # One k-means fit per class for GEN kmeans and kls together; one ls system for ls and kls.
    assert fits == [3, 3, 3] and systems == [1e-3]
    # kls: sklearn's clusters as classes of numpy's closed form; scored by the max inner
    # product. The shared system is A over all rows, whatever the grouping.
    task = np.isin(yte, classes)
    groups, owner = [], []
    for i, c in enumerate(classes):
        labels = KMeans(n_clusters=3, random_state=5).fit(xtr[ytr == c]).labels_
        groups += [xtr[ytr == c][labels == j] for j in range(3)]
        owner += [i] * 3
    w = ls_closed_form(groups, 1e-3)
    pred = np.asarray(classes)[np.asarray(owner)[np.argmax(xte[task] @ w.T, axis=1)]]
    kls = res[res.gen == "kls"].iloc[0]
    assert kls.accuracy == pytest.approx(100 * np.mean(pred == yte[task]), abs=1e-9)


def test_kmedoids_for_every_k_at_once_equals_each_k_alone(digits):
    # One distance matrix per class serves every k of the grid; alone, each k makes its own.
    together = run(digits, {"gen": ["kmedoids"], "k": [1, 3, 5, 200], "seeds": [0]}, [0, 1, 2])
    alone = pd.concat(
        [
            run(digits, {"gen": ["kmedoids"], "k": [k], "seeds": [0]}, [0, 1, 2])
            for k in (1, 3, 5, 200)
        ],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(together.drop(columns=TIMING), alone.drop(columns=TIMING))


def test_quantile_norm_order_follows_the_task(digits):
    grid = {"gen": ["mean"], "norm_post": ["quantile"], "seeds": [0]}
    a = run(digits, grid, classes=[0, 1, 2, 3])
    b = run(digits, grid, classes=[3, 2, 1, 0])
    assert a.accuracy[0] != b.accuracy[0]


def test_m_beyond_proxies_warns(digits):
    with pytest.warns(UserWarning, match="exceeds the 3 proxies"):
        run(
            digits,
            {
                "gen": ["mean"],
                "agg": ["mnn"],
                "distance": ["cosine"],
                "m": [5],
                "k": [5],
                "seeds": [0],
            },
            [0, 1, 2],
        )


def test_errors_name_the_problem(digits):
    xtr, ytr, xte, yte = digits
    cfg = expand_grid({"gen": ["mean"], "seeds": [0]})
    with pytest.raises(ValueError, match=r"task class\(es\) \[11\] have no samples"):
        evaluate_grid(xtr, ytr, xte, yte, cfg, classes=[0, 11])
    with pytest.raises(ValueError, match="no samples after remapping"):
        evaluate_grid(xtr, ytr, xte, yte, cfg, classes=[0, 5], mapping={0: 0, 1: 1})
    with pytest.raises(ValueError, match="dimension 64 but test embeddings 10"):
        evaluate_grid(xtr, ytr, xte[:, :10], yte, cfg, classes=[0, 1])
    with pytest.raises(ValueError, match="needs the ridge"):
        evaluate_grid(
            xtr, ytr, xte, yte, expand_grid({"gen": ["ls"], "seeds": [0]}), classes=[0, 1]
        )
    with pytest.raises(ValueError, match="class 7 has no training samples left after presampling"):
        evaluate_grid(
            xtr,
            ytr,
            xte,
            yte,
            expand_grid(
                {
                    "presampling": ["weibull"],
                    "presampling_quantiles": [[0.999999, 1.0]],
                    "seeds": [0],
                }
            ),
            classes=[7, 1],
        )


def write_npz(path, x, y, **extra):
    np.savez(path, embeddings=x, labels=y, **extra)
    return path


def test_embedding_file_checks(tmp_path):
    x = np.ones((4, 3), np.float32)
    y = np.arange(4)
    assert load_embeddings(write_npz(tmp_path / "ok.npz", x, y)).dim == 3
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(
        EmbeddingFileError,
        match=r"nan.npz: 1 embedding row\(s\) hold NaN or inf \(first rows: \[2\]\)",
    ):
        load_embeddings(write_npz(tmp_path / "nan.npz", bad, y))
    with pytest.raises(EmbeddingFileError, match="labels must be integers"):
        load_embeddings(write_npz(tmp_path / "flt.npz", x, y + 0.5))
    with pytest.raises(EmbeddingFileError, match="one entry per embedding row"):
        load_embeddings(write_npz(tmp_path / "len.npz", x, y[:3]))
    with pytest.raises(EmbeddingFileError, match=r"missing array\(s\) \['labels'\]"):
        load_embeddings(_npz(tmp_path / "nolab.npz", embeddings=x))
    with pytest.raises(EmbeddingFileError, match="pickled objects are refused"):
        np.savez(tmp_path / "obj.npz", embeddings=np.array([x], dtype=object), labels=y)
        load_embeddings(tmp_path / "obj.npz")
    (tmp_path / "pickle.npz").write_bytes(pickle.dumps({"embeddings": x}))
    with pytest.raises(EmbeddingFileError, match="pickle.npz: a Python pickle"):
        load_embeddings(tmp_path / "pickle.npz")
    with pytest.raises(EmbeddingFileError, match="must be 2-D"):
        load_embeddings(write_npz(tmp_path / "1d.npz", np.ones(4, np.float32), y))
    with pytest.raises(EmbeddingFileError, match=r"meta.npz: array 'meta': metadata is not valid"):
        load_embeddings(write_npz(tmp_path / "meta.npz", x, y, meta=np.array("{backbone")))
    with pytest.raises(EmbeddingFileError, match="metadata must be a JSON object"):
        load_embeddings(write_npz(tmp_path / "list.npz", x, y, meta=np.array("[1]")))
    (tmp_path / "dir").mkdir()
    np.save(tmp_path / "dir/embeddings.npy", x)
    np.save(tmp_path / "dir/labels.npy", y)
    (tmp_path / "dir/meta.json").write_text("{")
    with pytest.raises(EmbeddingFileError, match=r"dir/meta.json: metadata is not valid JSON"):
        load_embeddings(tmp_path / "dir")


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_embedding_directory_round_trip_is_memory_mapped(tmp_path):
    x = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    save_embeddings(tmp_path / "set", x, np.arange(6), {"backbone": "resnet18"})
    loaded = load_embeddings(tmp_path / "set")
    assert isinstance(loaded.embeddings, np.memmap)
    np.testing.assert_array_equal(loaded.embeddings, x)
    assert loaded.meta["backbone"] == "resnet18" and loaded.meta["dim"] == 5
    assert [p.name for p in tmp_path.iterdir()] == ["set"]  # no temporary left behind


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_cli_evaluate_writes_a_table(tmp_path, digits, suffix):
    xtr, ytr, xte, yte = digits
    write_npz(tmp_path / "train.npz", xtr, ytr)
    write_npz(tmp_path / "test.npz", xte, yte)
    (tmp_path / "grid.yaml").write_text(
        "seeds: [1, 2]\ngen: [mean, kmeans, ls]\nk: [2]\nnorm_post: [none, l2]\n"
    )
    (tmp_path / "map.yaml").write_text("0: 0\n1: 1\n7: 1\n")
    out = tmp_path / f"res{suffix}"
    code = main(
        [
            "evaluate",
            "--train",
            str(tmp_path / "train.npz"),
            "--test",
            str(tmp_path / "test.npz"),
            "--grid",
            str(tmp_path / "grid.yaml"),
            "--task",
            "0,1",
            "--mapping",
            str(tmp_path / "map.yaml"),
            "--ls-lambda",
            "0.01",
            "--ls-precision",
            "float32",
            "--out",
            str(out),
            "-q",
        ]
    )
    assert code == 0
    df = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert len(df) == 3 * 2 * 2 and list(df.columns) == RESULT_COLUMNS
    assert df.accuracy.between(0, 100).all() and (df.gen_seconds >= 0).all()
    assert all(len(json.loads(v)) == 2 for v in df.f1_per_class)


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys, digits):
    xtr, ytr, _, _ = digits
    write_npz(tmp_path / "t.npz", xtr, ytr)
    code = main(
        [
            "evaluate",
            "--train",
            str(tmp_path / "t.npz"),
            "--test",
            str(tmp_path / "t.npz"),
            "--grid",
            "paper:nope",
            "--out",
            str(tmp_path / "o.csv"),
        ]
    )
    assert code == 2 and "unknown paper grid 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def test_cli_checks_mapping_output_and_lambda_before_the_work(tmp_path, capsys, digits):
    xtr, ytr, xte, yte = digits
    meta = np.array(json.dumps({"backbone": "my_model"}))  # not in the registry
    write_npz(tmp_path / "train.npz", xtr, ytr, meta=meta)
    write_npz(tmp_path / "test.npz", xte, yte)
    (tmp_path / "bad_map.yaml").write_text("{0: [\n")
    (tmp_path / "mean.yaml").write_text("gen: [mean]\n")
    (tmp_path / "ls.yaml").write_text("gen: [ls]\n")

    def evaluate(grid, out="o.csv", *extra):
        files = ["--train", str(tmp_path / "train.npz"), "--test", str(tmp_path / "test.npz")]
        args = [*files, "--grid", str(tmp_path / grid), "--out", str(tmp_path / out), "-q"]
        return main(["evaluate", *args, *extra]), capsys.readouterr().err

    code, err = evaluate("mean.yaml", "o.csv", "--mapping", str(tmp_path / "bad_map.yaml"))
    assert code == 2 and "bad_map.yaml: not valid YAML: line 2, column 1" in err
    code, err = evaluate("mean.yaml", "o.txt")
    assert code == 2 and "o.txt: a results table is .csv or .parquet, not '.txt'" in err
    # λ is only looked up for ls/kls: an unregistered backbone runs every other GEN.
    assert evaluate("mean.yaml")[0] == 0 and len(pd.read_csv(tmp_path / "o.csv")) == 3  # seeds
    code, err = evaluate("ls.yaml")
    assert code == 2 and "no ls λ registered for backbone 'my_model'" in err
    assert evaluate("ls.yaml", "o.csv", "--ls-lambda", "0.01")[0] == 0


def test_cli_grid_counts(capsys):
    assert main(["grid", "paper:aggfixed"]) == 0
    assert "294 configurations × seeds = 882 runs" in capsys.readouterr().out


# Every component and distance, the draws of a configuration's stream and k-medoids: the grid
# the device-independence checks run.
DEVICE_CHECK_GRID = {
    "parts": [
        {
            "seeds": [1],
            "gen": ["kmeans", "mean", "all", "ls", "kls"],
            "k": [3],
            "norm_post": ["none", "quantile"],
            "agg": ["max", "mnn"],
            "distance": ["inner_product", "euclidean", "mahalanobis"],
            "m": [-1, 3],
        },
        {
            # Draws from the configuration's stream, k-medoids, every other distance.
            "seeds": [1, 2],
            "norm_pre": ["l2"],
            "norm_inf": ["l2"],
            "fewshot": [-1, 20],
            "gen": ["random", "fps", "kmedoids", "cov_max", "none"],
            "k": [2],
            "agg": ["max", "mnn"],
            "distance": ["cosine", "manhattan", "chebyshev"],
            "weighting": ["uniform", "weighted_by_distance"],
            "m": [-1, 5],
        },
        {"seeds": [1], "presampling": ["weibull"], "presampling_quantiles": [[0.1, 0.9]]},
    ]
}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_same_results(digits):
    # atol 0.2 points: at most one of the 597 test rows may move (a float near-tie).
    cpu = run(digits, DEVICE_CHECK_GRID, device="cpu")
    gpu = run(digits, DEVICE_CHECK_GRID, device="cuda")
    np.testing.assert_allclose(cpu.accuracy, gpu.accuracy, atol=0.2)
    np.testing.assert_allclose(cpu.f1_macro, gpu.f1_macro, atol=0.5)
    # The reference's float32 ls/kls arithmetic (the paper config's) on the device's BLAS.
    ls32 = {"seeds": [1], "gen": ["ls", "kls"], "k": [3]}
    cpu32 = run(digits, ls32, device="cpu", ls_precision="float32")
    gpu32 = run(digits, ls32, device="cuda", ls_precision="float32")
    np.testing.assert_allclose(cpu32.accuracy, gpu32.accuracy, atol=0.2)


def test_results_do_not_depend_on_the_order_of_float_sums(digits):
    # What a GPU changes besides speed is the order in which float sums are taken (RNG draws
    # and tie-breaking are device-independent by construction). Permuting the feature axis
    # reorders every dot product, distance and statistic without changing the exact result,
    # and so does the thread count (2 against 1, set here: test workers may run at 1). As in the
    # CUDA test, a configuration may move by one test row (a float near-tie another BLAS build
    # could meet); with this torch on x86-64 none moved in either comparison. Real-valued features
    # (a random projection of the digits), since sums of small integers are exact in any order.
    rng = np.random.default_rng(0)
    proj = (rng.standard_normal((64, 48)) / 8).astype(np.float32)
    xtr, ytr, xte, yte = digits
    projected = (xtr @ proj, ytr, xte @ proj, yte)
    dims = rng.permutation(48)
    permuted = (projected[0][:, dims], ytr, projected[2][:, dims], yte)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        base = run(projected, DEVICE_CHECK_GRID, progress=False)
        other = run(permuted, DEVICE_CHECK_GRID, progress=False)
        torch.set_num_threads(1)
        one_thread = run(projected, DEVICE_CHECK_GRID, progress=False)
    finally:
        torch.set_num_threads(threads)
    # GEN none draws a random weight per feature, so its proxies follow the feature order.
    kept = base.gen != "none"
    assert kept.sum() == 195  # of DEVICE_CHECK_GRID's 231 runs
    for reordered, rows in ((other, kept), (one_thread, base.index == base.index)):
        moved = (base.accuracy[rows] - reordered.accuracy[rows]).abs()
        assert moved.max() <= 100 / len(yte) + 1e-9 and (moved > 0).sum() <= 2


@pytest.mark.parametrize("handled", [True, False])
def test_sigterm_inside_atomic_path_leaves_no_temporary(tmp_path, handled):
    # What a SLURM time limit does to a job half-way through writing its output.
    script = (
        "import os, signal, time\n"
        "from imprint.outputs import atomic_path, exit_cleanly_on_sigterm\n"
        f"if {handled}: exit_cleanly_on_sigterm()\n"
        f"with atomic_path({str(tmp_path / 'out.npz')!r}) as tmp:\n"
        "    tmp.write_bytes(b'partial')\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(5)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    left = sorted(p.name for p in tmp_path.iterdir())
    if handled:
        assert proc.returncode == 143 and left == []
    else:  # Python's default: killed on the spot, the temporary stays (why the handler exists)
        assert proc.returncode == -signal.SIGTERM and len(left) == 1 and left[0].endswith(".tmp")


def test_cli_default_task_is_every_class_of_the_training_file(tmp_path, digits):
    # 20 classes: the default task must not be the paper's split of classes 0-9.
    xtr, ytr, xte, yte = digits
    write_npz(tmp_path / "train.npz", xtr, ytr + 10 * (np.arange(len(ytr)) % 2))
    write_npz(tmp_path / "test.npz", xte, yte + 10 * (np.arange(len(yte)) % 2))
    (tmp_path / "mean.yaml").write_text("gen: [mean]\nseeds: [0]\n")
    files = ["--train", str(tmp_path / "train.npz"), "--test", str(tmp_path / "test.npz")]
    out = tmp_path / "o.csv"
    assert (
        main(["evaluate", *files, "--grid", str(tmp_path / "mean.yaml"), "--out", str(out), "-q"])
        == 0
    )
    assert len(json.loads(pd.read_csv(out).f1_per_class[0])) == 20
    (tmp_path / "halves.yaml").write_text("{3: 0, 13: 1, 4: 1}\n")  # after a mapping: its labels
    mapped = ["--mapping", str(tmp_path / "halves.yaml")]
    assert (
        main(
            [
                "evaluate",
                *files,
                "--grid",
                str(tmp_path / "mean.yaml"),
                "--out",
                str(out),
                "-q",
                *mapped,
            ]
        )
        == 0
    )
    assert len(json.loads(pd.read_csv(out).f1_per_class[0])) == 2


def test_cli_names_what_is_wrong_with_a_file(tmp_path, capsys, digits):
    xtr, ytr, _, _ = digits
    write_npz(tmp_path / "t.npz", xtr, ytr)
    np.save(tmp_path / "x.npy", xtr)
    (tmp_path / "mean.yaml").write_text("gen: [mean]\nseeds: [0]\n")
    (tmp_path / "float_map.yaml").write_text("{0: 1.5, 1: 0}\n")

    def evaluate(train, *extra):
        args = ["--train", str(train), "--test", str(tmp_path / "t.npz")]
        args += ["--grid", str(tmp_path / "mean.yaml"), "--out", str(tmp_path / "o.csv"), "-q"]
        return main(["evaluate", *args, *extra]), capsys.readouterr().err

    code, err = evaluate(tmp_path / "x.npy")
    assert code == 2 and "x.npy: a single array (.npy), not an embedding set" in err
    code, err = evaluate(tmp_path / "t.npz", "--mapping", str(tmp_path / "float_map.yaml"))
    assert code == 2 and "float_map.yaml: mapping keys and values must be integers, got 1.5" in err
    write_npz(tmp_path / "narrow.npz", xtr[:, :10], ytr)
    code, err = evaluate(tmp_path / "narrow.npz")
    assert code == 2 and f"training embeddings {tmp_path / 'narrow.npz'} have dimension 10" in err
    assert f"test embeddings {tmp_path / 't.npz'} 64" in err
    code, err = evaluate(tmp_path / "t.npz", "--task", "3,42")
    assert code == 2 and f"training embeddings {tmp_path / 't.npz'}: task class" in err
    write_npz(tmp_path / "empty.npz", xtr[:0], ytr[:0])
    code, err = evaluate(tmp_path / "empty.npz")
    assert code == 2 and "empty.npz: no rows (embeddings of shape (0, 64))" in err
    code, err = evaluate(tmp_path / "t.npz", "--device", "gpu")
    assert code == 2 and "device 'gpu': not a torch device; allowed: cpu, cuda, cuda:N" in err
    if not torch.cuda.is_available():
        code, err = evaluate(tmp_path / "t.npz", "--device", "cuda")
        assert code == 2 and "device 'cuda': no CUDA device is available here" in err
    code = main(["cd", str(tmp_path / "missing.parquet"), "--out-prefix", str(tmp_path / "cd")])
    assert code == 2 and "missing.parquet: no such table" in capsys.readouterr().err
