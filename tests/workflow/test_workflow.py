"""The real Snakemake workflow on .test/tiny: outputs, caching, reruns, config errors, lint."""

import json
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
import yaml
from _snakemake import REPO, install_config, job_counts, load_config, snakemake

TINY = load_config("tiny")  # .test/tiny/config.yaml: the fixture runs that file as it is


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("wf")
    install_config("tiny", d)
    snakemake(d)
    return d


pytestmark = pytest.mark.slow


def test_default_config_plans_and_lints():
    dry = snakemake(REPO, "-n", "--quiet", "rules")
    assert "imprint_grid" in dry.stdout + dry.stderr
    lint = snakemake(REPO, "--lint", check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "your workflow is in a good condition" in lint.stdout + lint.stderr


def test_results_tables_hold_every_configuration(workdir):
    from imprint.engine.grid import expand_grid

    res = pd.read_parquet(workdir / "results/imprint/tiny.parquet")
    n_runs = len(expand_grid(TINY["experiments"]["tiny"]["grid"]))
    assert len(res) == n_runs * 2 * 2  # × backbones × tasks
    assert set(res.backbone) == {"pixels", "resnet18_random"} and set(res.task) == {
        "short",
        "binary",
    }
    assert res.accuracy.between(0, 100).all()
    # Raw pixels of 0 vs 1 are easy: the class mean is nearly perfect.
    mean_px = res[
        (res.backbone == "pixels")
        & (res.task == "binary")
        & (res.gen == "mean")
        & (res.norm_post == "l2")
    ]
    assert mean_px.accuracy.min() > 95
    meta = json.loads(
        (workdir / "results/embeddings/digits/resnet18_random/train/meta.json").read_text()
    )
    assert (
        meta["backbone"] == "resnet18_random" and meta["dataset"] == "digits" and meta["dim"] == 512
    )
    assert meta["n"] == 300  # limit_per_class 30 × 10 classes


def test_imprint_cd_runs_on_a_gathered_table_as_the_readme_shows(workdir, tmp_path):
    from imprint.cli.main import main

    table = workdir / "results/imprint/tiny.parquet"
    args = ["cd", str(table), "--seed", "seed", "--out-prefix", str(tmp_path / "cd")]
    assert main(args) == 0
    ranks = pd.read_csv(tmp_path / "cd_ranks.csv")
    assert len(ranks) == pd.read_parquet(table).config_id.nunique()


def test_tables_figures_and_collapse(workdir):
    md = (workdir / "results/tables/table1.md").read_text()
    assert "Qi" in md and "86.79" in md
    summary = (workdir / "results/stats/tiny/summary.txt").read_text()
    assert "Over all of them: Friedman test" in summary
    # mean, kmeans, all and the linear probe (not in the paper); ls left out
    assert "the best configuration per gen (4)" in summary
    assert "Maximal groups no pair of which differs:" in summary
    ranks = pd.read_csv(workdir / "results/stats/tiny/ranks.csv")
    assert ranks.average_rank.is_monotonic_increasing and len(ranks) > 30
    assert set(ranks.gen) == {"mean", "kmeans", "all", "linear_probe"}
    shown = pd.read_csv(workdir / "results/stats/tiny/pvalues.csv")
    best = ranks.drop_duplicates("gen")
    assert sorted(shown.method) == sorted(f"gen={g}: {m}" for g, m in zip(best.gen, best.method))
    collapse = pd.read_csv(workdir / "results/collapse/collapse.csv")
    assert set(collapse.mapping) == {"none", "halves"} and (collapse.nc1 > 0).all()
    # Merging five digits into a label makes classes less collapsed.
    nc1 = collapse.set_index("mapping").nc1
    assert nc1["halves"] > nc1["none"]
    best_k = pd.read_csv(workdir / "results/tables/merged/best_k.csv")
    assert set(best_k.mapping) == {"none", "halves", "map5-0", "map5-1"}
    # §5.3 against i: the variations' accuracies averaged per k, the best k picked on that.
    merged = pd.read_csv(workdir / "results/tables/merged/accuracy_vs_merged.csv")
    res_merged = pd.read_parquet(workdir / "results/imprint/merged.parquet")
    variations = res_merged[res_merged.mapping.isin(["map5-0", "map5-1"])]
    per_k = variations.groupby(["mapping", "k"]).accuracy.median().groupby("k").mean()
    assert set(merged.method) == {"mean", "kmeans"} and set(merged.merged_classes) == {5}
    kmeans = merged.set_index("method").loc["kmeans"]
    assert kmeans.accuracy == pytest.approx(per_k.max())
    assert kmeans.k == min(k for k, v in per_k.items() if v == pytest.approx(per_k.max()))
    assert merged.set_index("method").loc["mean"].accuracy == pytest.approx(per_k[1])
    # NC1 beside the gain of k = 4 over k = 1, one row per (backbone, dataset, mapping).
    pairs = pd.read_csv(workdir / "results/tables/merged/nc1_vs_gain.csv")
    assert sorted(pairs.mapping) == ["halves", "none"] and pairs.nc1.tolist() == [
        nc1[m] for m in pairs.mapping
    ]
    res = pd.read_parquet(workdir / "results/imprint/merged.parquet")
    acc = res.groupby(["mapping", "k"]).accuracy.median()
    for _, row in pairs.iterrows():
        by_k = acc[row.mapping]
        assert row.gain == pytest.approx(by_k[4] - by_k[1])
    for fig in [
        "tiny/cd_diagram",
        "tiny/accuracy_overview",
        "tiny/accuracy_vs_proxies",
        "tiny/fewshot_curves",
        "merged/multimodal",
        "merged/accuracy_vs_merged",
        "merged/nc1_vs_gain",
        "collapse/nc1",
        "model_choice/transferability",
        "model_choice/similarity",
        "model_choice/stitching",
        "model_choice/stitching_ranks",
    ]:
        for ext in ("pdf", "png"):
            assert (workdir / f"results/figures/{fig}.{ext}").stat().st_size > 5000, fig
    # tiny's groups are small: one job per (experiment, dataset, backbone) (planning/batches.py).
    assert (workdir / "logs/imprint_grid/tiny/digits/pixels/none/short+binary.log").exists()
    assert (
        workdir / "logs/imprint_grid/merged/digits/pixels/none+halves+map5-0+map5-1/binary.log"
    ).exists()


def test_second_run_does_nothing_and_a_deleted_table_reruns_alone(workdir):
    again = snakemake(workdir, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
    # The batch size sets speed, not results: changing it reruns nothing.
    smaller = dict(TINY, extraction={**TINY["extraction"], "batch_size": 16})
    (workdir / "smaller.yaml").write_text(yaml.safe_dump(smaller, sort_keys=False))
    again = snakemake(workdir, "-n", "--configfile", str(workdir / "smaller.yaml"))
    assert "Nothing to be done" in again.stdout + again.stderr
    # A configured λ reruns the jobs whose grid has ls or kls on that backbone, nothing else:
    # not its extractions, not the experiment without ls ("merged"), not the other backbone.
    lam = dict(TINY, backbones={**TINY["backbones"], "pixels": {"ls_lambda": 0.5}})
    (workdir / "lambda.yaml").write_text(yaml.safe_dump(lam, sort_keys=False))
    dry = snakemake(workdir, "-n", "--configfile", str(workdir / "lambda.yaml"))
    plan = job_counts(dry.stdout + dry.stderr)
    assert plan["imprint_grid"] == 1 and "extract_embeddings" not in plan
    rerun = re.findall(r"rule imprint_grid:\n(?:.*\n)*?\s+output: (\S+)", dry.stdout)
    assert rerun == ["results/imprint/tiny/digits/pixels/none/short+binary.parquet"]
    (workdir / "results/imprint/tiny/digits/pixels/none/short+binary.parquet").unlink()
    dry = snakemake(workdir, "-n")
    plan = job_counts(dry.stdout + dry.stderr)
    assert plan["imprint_grid"] == 1 and plan["gather_results"] == 1
    assert "extract_embeddings" not in plan and "compute_collapse" not in plan
    assert set(plan) <= {
        "imprint_grid",
        "gather_results",
        "rank_configurations",
        "summarise_table1",
        # tiny's figures of its results table (its cd_diagram is rank_configurations')
        "plot_accuracy_overview",
        "plot_accuracy_vs_proxies",
        "plot_fewshot_curves",
        # the model-choice table reads tiny's accuracies
        "gather_transferability",
        "plot_transferability",
        "all",
    }
    snakemake(workdir)
    final = snakemake(workdir, "-n")
    assert "Nothing to be done" in final.stdout + final.stderr


def test_a_typo_in_the_config_fails_at_once_naming_the_key(tmp_path):
    bad = dict(TINY, experimnts={})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(bad))
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0 and "experimnts" in proc.stdout + proc.stderr
    bad = dict(TINY)
    bad["experiments"] = {"x": dict(TINY["experiments"]["merged"], backbones=["resnet19"])}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(bad))
    proc = snakemake(tmp_path, "-n", check=False)
    assert (
        proc.returncode != 0
        and "'resnet19' is not defined under backbones" in proc.stdout + proc.stderr
    )
    bad = dict(TINY)
    bad["experiments"] = dict(
        TINY["experiments"], merged=dict(TINY["experiments"]["merged"], grid={"norm_pree": ["l2"]})
    )
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(bad))
    proc = snakemake(tmp_path, "-n", check=False)
    assert (
        proc.returncode != 0
        and "experiments.merged.grid: unknown grid key(s) ['norm_pree']"
        in proc.stdout + proc.stderr
    )
    bad = dict(TINY, engine={"ls_precision": "float16"})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(bad))
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0 and "float16" in proc.stdout + proc.stderr


def test_model_choice_tables_against_the_results_and_the_embeddings(workdir):
    from imprint.io import load_embeddings

    table = pd.read_csv(workdir / "results/model_choice/transferability.csv")
    assert len(table) == 2 * 2  # backbones × tasks of experiment tiny
    res = pd.read_parquet(workdir / "results/imprint/tiny.parquet")
    full = res[(res.fewshot == -1) & ~res.gen.isin(["ls", "linear_probe"])]
    medians = full.groupby(["backbone", "task", "config_id"]).accuracy.median()
    probe = res[res.gen == "linear_probe"].groupby(["backbone", "task"]).accuracy.median()
    for row in table.itertuples():
        assert row.best_imprinting == pytest.approx(medians[row.backbone, row.task].max())
        assert row.linear_probe == pytest.approx(probe[row.backbone, row.task])
        assert row.n_classes == len(TINY["tasks"][row.task]) and 0 < row.loo_knn_accuracy <= 100
    agreement = pd.read_csv(workdir / "results/model_choice/transferability_agreement.csv")
    mean = agreement[agreement.task == "mean"]
    assert len(mean) == 14 * 2  # estimators × (best imprinting, linear probe)
    assert table.ncti.notna().all()
    assert agreement.tau.dropna().between(-1, 1).all()
    # Every estimate and every τ against direct computations (the tests below).
    # CKA as Kornblith et al.'s HSIC ratio of the centred Gram matrices, from the test files.
    cka = pd.read_csv(workdir / "results/model_choice/similarity/digits.csv")
    assert cka[["a", "b"]].values.tolist() == [["pixels", "resnet18_random"]]
    grams = []
    for backbone in ("pixels", "resnet18_random"):
        x = load_embeddings(workdir / f"results/embeddings/digits/{backbone}/test").embeddings
        x = x.astype(np.float64) - x.mean(axis=0)
        grams.append(x @ x.T)
    hsic = [[float((a * b).sum()) for b in grams] for a in grams]
    expected = hsic[0][1] / np.sqrt(hsic[0][0] * hsic[1][1])
    assert cka.cka.iloc[0] == pytest.approx(expected, rel=1e-6)


def test_stitching_numbers_equal_numpy_from_the_embeddings(workdir):
    """compute_stitching's direct-matching rows against numpy: lstsq with a bias on the
    training rows paired by image id, the target's unit class means of unit rows, argmax on
    the mapped test rows. From pixels (three identical colour channels, 300 rows for 768
    columns) the minimum-norm map has weights near 1e8 and its test predictions are rounding
    noise in any implementation: there the training residual, which is stable, is compared."""
    table = pd.read_csv(workdir / "results/model_choice/stitching/digits.csv")
    pairs = {("pixels", "resnet18_random"), ("resnet18_random", "pixels")}
    assert set(zip(table.source, table.target, strict=True)) == pairs
    assert set(table.matching) == {"direct", "direct_k", "orthogonal", "task_loss"}

    from imprint.io import load_embeddings

    def aligned(backbone, split):
        s = load_embeddings(workdir / f"results/embeddings/digits/{backbone}/{split}")
        order = np.argsort(s.ids)
        return np.asarray(s.embeddings, np.float64)[order], np.asarray(s.labels)[order]

    for source, target in pairs:
        (a_train, y), (b_train, _) = aligned(source, "train"), aligned(target, "train")
        (a_test, y_test), (b_test, _) = aligned(source, "test"), aligned(target, "test")
        design = np.hstack([a_train, np.ones((len(a_train), 1))])
        solution = np.linalg.lstsq(design, b_train, rcond=None)[0]
        mapped = np.hstack([a_test, np.ones((len(a_test), 1))]) @ solution
        unit = b_train / np.linalg.norm(b_train, axis=1, keepdims=True)
        means = np.stack([unit[y == c].mean(axis=0) for c in range(10)])
        means /= np.linalg.norm(means, axis=1, keepdims=True)  # NORMpost l2
        stitched = 100 * np.mean(np.argmax(mapped @ means.T, axis=1) == y_test)
        own = 100 * np.mean(np.argmax(b_test @ means.T, axis=1) == y_test)
        residual = ((mapped - b_test) ** 2).sum() / (b_test**2).sum()
        row = table[
            (table.source == source)
            & (table.target == target)
            & (table.matching == "direct")
            & (table.classifier == "mean")
        ].iloc[0]
        assert row.target_accuracy == pytest.approx(own)
        train_residual = ((design @ solution - b_train) ** 2).sum() / (b_train**2).sum()
        assert row.train_residual == pytest.approx(train_residual, rel=1e-3)
        if source == "resnet18_random":  # well posed
            assert row.stitched_accuracy == pytest.approx(stitched)
            assert row.residual == pytest.approx(residual, rel=1e-4)
    ranks = pd.read_csv(workdir / "results/model_choice/stitching/digits_ranks.csv")
    assert set(ranks["rank"][ranks.source == "pixels"]) == {
        768,
        512,
        256,
        128,
        64,
        32,
        16,
        8,
        4,
        2,
        1,
    }
    assert ranks.cka.between(0, 1).all() and set(ranks.classifier) == {"mean"}


def _transferability_helpers():
    """tests/analysis/test_transferability.py as a module: its direct computations of the
    estimators' equations (not the library's algorithms)."""
    import importlib.util

    path = REPO / "tests/analysis/test_transferability.py"
    spec = importlib.util.spec_from_file_location("_transferability_direct", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _family_helpers(family):
    """tests/analysis/test_transferability_<family>.py as a module (its direct computations)."""
    import importlib.util
    import sys

    sys.path.insert(0, str(REPO / "tests/analysis"))  # they import test_transferability
    path = REPO / f"tests/analysis/test_transferability_{family}.py"
    spec = importlib.util.spec_from_file_location(f"_transferability_{family}_direct", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _newer_estimates_direct(x, y):
    """SFDA, NLEEP, PARC, GBC, PED and the embedding size of one task's rows, from the direct
    computations of tests/analysis/test_transferability_<family>.py (NLEEP: scikit-learn's
    PCA at 80 % of the variance, at most 32 components, and mixture, LEEP by hand; the tiny
    tasks have fewer rows than NLEEP's and PARC's caps)."""
    import warnings

    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    from imprint.analysis.transferability.linear import logme

    fisher, mixture = _family_helpers("fisher"), _family_helpers("mixture")
    separability, potential = _family_helpers("separability"), _family_helpers("potential")
    assert len(y) <= 2000
    k80 = PCA(n_components=0.8, svd_solver="full").fit(x).n_components_
    z = PCA(n_components=min(k80, 32), svd_solver="full").fit_transform(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = min(5 * len(np.unique(y)), len(y))
        posterior = GaussianMixture(k, covariance_type="full", random_state=0).fit(z)
    return {
        "sfda": fisher._sfda_direct(x, y),
        "nleep": mixture._leep_by_hand(posterior.predict_proba(z), y),
        "parc": separability._parc_direct(x, y),
        "gbc": separability._gbc_direct(x, y),
        "ped": logme(potential._moved_direct(x, y), y),
        "embedding_size": x.shape[1],
    }


def _parameter_count_direct(backbone):
    """The backbone's parameters as built (its head replaced), or None for pixels (none)."""
    from imprint.data.backbones import build_backbone

    count = sum(p.numel() for p in build_backbone(backbone, weights=None)[0].parameters())
    return count or None


ESTIMATES = ["logme", "h_score", "loo_knn_accuracy", "tmi", "ncti_etf", "ncti_ncc", "ncti_vc"]
ESTIMATES += ["nc1", "vci", "sfda", "nleep", "parc", "gbc", "ped", "embedding_size"]
ESTIMATES += ["parameter_count"]


@pytest.fixture(scope="module")
def direct_estimates(workdir):
    """Each model-choice group's estimates computed here from its training embedding file
    (results/embeddings/...): the task's rows in file order, as float64. {(backbone, task):
    {estimate: value}}."""
    from imprint.io import load_embeddings

    helpers = _transferability_helpers()
    experiment = TINY["experiments"][TINY["model_choice"]["experiments"][0]]
    assert experiment["mappings"] == ["none"]
    out = {}
    for dataset in experiment["datasets"]:
        for backbone in experiment["backbones"]:
            found = load_embeddings(workdir / f"results/embeddings/{dataset}/{backbone}/train")
            for task in experiment["tasks"]:
                classes = TINY["tasks"][task]
                keep = np.isin(found.labels, classes)
                x = np.asarray(found.embeddings[keep], dtype=np.float64)
                y = np.searchsorted(classes, found.labels[keep])
                # LogME: each class's evidence, as y's marginal likelihood, maximised over α, β
                # by Nelder-Mead (and its limits), divided by n and averaged over the classes.
                marginal = helpers._marginal_by_svd(x)
                logme = np.mean(
                    [
                        helpers._evidence_supremum(x, (y == c).astype(float), marginal)
                        for c in range(len(classes))
                    ]
                )
                # NC1 and VCI (Papyan et al.; Xu & Liu) of the L2-normalised rows: Σ_W the mean
                # of the classes' covariances, Σ_B that of the class means around the global
                # mean, Σ_T = Σ_W + Σ_B.
                u = x / np.linalg.norm(x, axis=1, keepdims=True)
                c = len(classes)
                sigma_w = np.mean([np.cov(u[y == k].T, bias=True) for k in range(c)], axis=0)
                centred = np.stack([u[y == k].mean(axis=0) for k in range(c)]) - u.mean(axis=0)
                sigma_b = centred.T @ centred / c
                pinv = lambda m: np.linalg.pinv(m, rcond=1e-10, hermitian=True)  # noqa: E731
                rank_b = np.linalg.matrix_rank(sigma_b, hermitian=True)
                out[backbone, task] = {
                    "logme": logme / len(y),
                    "h_score": helpers._h_score_direct(x, y),
                    "loo_knn_accuracy": helpers._loo_direct(x.astype(np.float32), y),
                    "tmi": helpers._tmi_direct(x, y),
                    **helpers._ncti_terms_direct(x, y),
                    "nc1": np.trace(sigma_w @ pinv(sigma_b)) / c,
                    "vci": 1 - np.trace(sigma_b @ pinv(sigma_w + sigma_b)) / rank_b,
                    **_newer_estimates_direct(x, y),
                    "parameter_count": _parameter_count_direct(backbone),
                    "n_samples": len(y),
                }
    return out


# How close each estimate must be to its direct computation: relative, or absolute for LogME
# (per-row evidence, any sign) and VCI (0 here up to rounding: n − 1 ≤ D, as for H-score,
# which is C − 1 on such data).
TOLERANCES = {
    "logme": {"abs": 1e-9},
    "h_score": {"rel": 1e-6},
    "loo_knn_accuracy": {"rel": 1e-12},
    "tmi": {"rel": 1e-9},
    "ncti_etf": {"rel": 1e-8},
    "ncti_ncc": {"rel": 1e-8},
    "ncti_vc": {"rel": 1e-8},
    "nc1": {"rel": 1e-9},
    "vci": {"abs": 1e-8},
    "sfda": {"rel": 1e-8},
    "nleep": {"rel": 1e-6},
    "parc": {"rel": 1e-8},
    "gbc": {"rel": 1e-8},
    "ped": {"abs": 1e-9},
    "embedding_size": {"rel": 0},
}
ORIENTED = {"nc1": -1.0, "vci": -1.0}  # lower is more collapsed: enters τ negated


def _check_transferability_table(table, direct):
    """Every estimate of the transferability table equals its direct computation, and NCTI is
    its three terms min-max scaled over the task's backbones, ncc + etf − vc (by hand)."""
    assert len(table) == len(direct)
    for row in table.itertuples():
        expected = direct[row.backbone, row.task]
        assert row.n_samples == expected["n_samples"]
        for name, tolerance in TOLERANCES.items():
            got = getattr(row, name)
            assert got == pytest.approx(expected[name], **tolerance), (row.backbone, row.task, name)
        # Recorded at extraction: exact, and empty (not 0) for pixels, which has none.
        count = row.parameter_count
        assert (expected["parameter_count"] is None and np.isnan(count)) or (
            count == expected["parameter_count"]
        ), (row.backbone, count)
    for _, part in table.groupby(["dataset", "mapping", "task"]):
        ncti = 0.0
        for term, sign in (("ncti_ncc", 1), ("ncti_etf", 1), ("ncti_vc", -1)):
            values = part[term].to_numpy()
            span = values.max() - values.min()
            ncti = ncti + sign * ((values - values.min()) / span if span > 0 else 0.0)
        np.testing.assert_allclose(part.ncti, ncti, rtol=0, atol=1e-12)


def _check_agreement_table(table, agreement):
    """Each τ is scipy's weighted τ of the estimates (NC1 and VCI negated) against the
    accuracies, read from the transferability table, across the task's backbones (empty
    where fewer than 2 backbones have both or either is constant); the mean rows average the
    tasks' τ."""
    from scipy.stats import weightedtau

    estimators = ["ncti", "tmi", "logme", "h_score", "loo_knn_accuracy", "nc1", "vci"]
    estimators += ["sfda", "nleep", "parc", "gbc", "ped", "embedding_size", "parameter_count"]
    targets = ["best_imprinting", "linear_probe"]
    tasks = agreement[agreement.task != "mean"]
    groups = table.groupby(["dataset", "mapping", "task"])
    assert len(tasks) == groups.ngroups * len(estimators) * len(targets)
    per_task = {}
    for (dataset, mapping, task), part in groups:
        for estimator in estimators:
            for target in targets:
                x = ORIENTED.get(estimator, 1.0) * part[estimator].to_numpy(float)
                y = part[target].to_numpy(float)
                both = np.isfinite(x) & np.isfinite(y)
                x, y = x[both], y[both]
                if len(x) < 2 or x.min() == x.max() or y.min() == y.max():
                    expected = np.nan
                else:
                    expected = weightedtau(x, y).statistic
                found = tasks[
                    (tasks.dataset == dataset)
                    & (tasks.mapping == mapping)
                    & (tasks.task == task)
                    & (tasks.estimator == estimator)
                    & (tasks.target == target)
                ]
                assert len(found) == 1, (task, estimator, target)
                tau = found.tau.iloc[0]
                where = (task, estimator, target)
                assert tau == pytest.approx(expected, abs=1e-12, nan_ok=True), where
                assert found.n_backbones.iloc[0] == len(x), where
                per_task.setdefault((estimator, target), []).append(expected)
    mean = agreement[agreement.task == "mean"]
    assert len(mean) == len(per_task)
    for (estimator, target), taus in per_task.items():
        found = mean[(mean.estimator == estimator) & (mean.target == target)]
        expected = np.nanmean(taus) if np.isfinite(taus).any() else np.nan
        assert found.tau.iloc[0] == pytest.approx(expected, abs=1e-12, nan_ok=True), (
            estimator,
            target,
        )


def test_model_choice_numbers_equal_direct_computations_from_the_embeddings(
    workdir, direct_estimates
):
    """LogME, H-score, leave-one-out kNN, TMI, NCTI's terms, NC1 and VCI of each (backbone,
    task) against their equations computed here from the workflow's embedding files; NCTI and
    every τ against hand computations from the table."""
    table = pd.read_csv(workdir / "results/model_choice/transferability.csv")
    agreement = pd.read_csv(workdir / "results/model_choice/transferability_agreement.csv")
    _check_transferability_table(table, direct_estimates)
    _check_agreement_table(table, agreement)
    # The τ are not all undefined: some rank the two backbones.
    assert agreement.tau.notna().sum() >= 10


@pytest.mark.parametrize("column", [*TOLERANCES, "ncti", "tau", "mean tau"])
def test_the_model_choice_checks_catch_a_changed_number(workdir, direct_estimates, column):
    table = pd.read_csv(workdir / "results/model_choice/transferability.csv")
    agreement = pd.read_csv(workdir / "results/model_choice/transferability_agreement.csv")
    if column in ("tau", "mean tau"):
        is_mean = agreement.task == "mean"
        rows = agreement[agreement.tau.notna() & (is_mean if column == "mean tau" else ~is_mean)]
        agreement.loc[rows.index[0], "tau"] -= 0.01
        with pytest.raises(AssertionError):
            _check_agreement_table(table, agreement)
        return
    table[column] = table[column].astype(float)  # embedding_size is an integer column
    value = table.loc[1, column]
    table.loc[1, column] = value + 1e-4 * max(1.0, abs(value))
    with pytest.raises(AssertionError):
        _check_transferability_table(table, direct_estimates)


def test_incremental_experiment_session_by_session(workdir):
    from imprint.engine.incremental import Protocol, protocol_rows
    from imprint.io import load_embeddings

    res = pd.read_parquet(workdir / "results/imprint/sessions.parquet")
    short = res[(res.task == "short") & (res.protocol == "incremental")]
    assert sorted(short.session.unique()) == [0, 1]
    assert set(res[res.task == "binary"].session) == {0}  # 2 classes: the base session only
    # GEN mean, L2 everywhere but NORMpost none, after session 1 (classes 0, 1 then 2, 5-shot),
    # computed here from the embedding files.
    train = load_embeddings(workdir / "results/embeddings/digits/pixels/train")
    test = load_embeddings(workdir / "results/embeddings/digits/pixels/test")
    rows_of = protocol_rows(train.labels, Protocol(((0, 1), (2,)), shots=5))
    assert [len(rows_of[c]) for c in (0, 1, 2)] == [30, 30, 5]
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    x = unit(np.asarray(train.embeddings, np.float64))
    means = np.stack([x[rows_of[c]].mean(axis=0) for c in (0, 1, 2)])  # NORMpost none
    keep = np.isin(test.labels, [0, 1, 2])
    xt = unit(np.asarray(test.embeddings, np.float64)[keep])
    pred = np.argmax(xt @ means.T, axis=1)
    truth = test.labels[keep]
    row = short[
        (short.backbone == "pixels")
        & (short.gen == "mean")
        & (short.norm_post == "none")
        & (short.session == 1)
    ].iloc[0]
    assert row.accuracy == pytest.approx(100 * np.mean(pred == truth))
    assert row.accuracy_new == pytest.approx(100 * np.mean(pred[truth == 2] == 2))
    best = pd.read_csv(workdir / "results/tables/sessions/best_incremental.csv")
    gens = {"mean", "kmeans", "all", "teen", "fecam", "ranpac", "fetril"}
    assert set(best.gen) == gens and best.joint_accuracy.notna().all()
    summary = (workdir / "results/stats/sessions/summary.txt").read_text()
    assert "ranked over 4 groups" in summary  # the last session of each (backbone, task)
    for ext in ("pdf", "png"):
        assert (
            workdir / f"results/figures/sessions/incremental_curves.{ext}"
        ).stat().st_size > 5000


def test_incremental_named_methods_session_by_session(workdir):
    """FeCAM in the tiny sessions experiment, against the method run here on the protocol's
    rows of the embedding files; the last-session table names every method."""
    from imprint.engine.incremental import Protocol, protocol_rows
    from imprint.engine.incremental_methods import run_method_sessions
    from imprint.io import load_embeddings

    res = pd.read_parquet(workdir / "results/imprint/sessions.parquet")
    train = load_embeddings(workdir / "results/embeddings/digits/resnet18_random/train")
    test = load_embeddings(workdir / "results/embeddings/digits/resnet18_random/test")
    rows_of = protocol_rows(train.labels, Protocol(((0, 1), (2,)), shots=5))
    x, y = np.asarray(train.embeddings), np.asarray(train.labels)
    sessions = [(x[np.concatenate([rows_of[0], rows_of[1]])], y[np.concatenate([rows_of[0], rows_of[1]])]),
                (x[rows_of[2]], y[rows_of[2]])]  # fmt: skip
    keep = np.isin(test.labels, [0, 1, 2])
    preds = list(run_method_sessions("fecam", sessions, np.asarray(test.embeddings)[keep], 0))
    truth = test.labels[keep]
    fecam = res[(res.backbone == "resnet18_random") & (res.task == "short") & (res.gen == "fecam")]
    for session, pred in enumerate(preds):
        seen = truth <= session + 1
        rows = fecam[(fecam.protocol == "incremental") & (fecam.session == session)]
        np.testing.assert_allclose(rows.accuracy, 100 * np.mean(pred[seen] == truth[seen]))
    table = pd.read_csv(workdir / "results/tables/sessions/last_session.csv")
    methods = {
        "SimpleShot (CL2N)",
        "TEEN",
        "FeCAM",
        "RanPAC",
        "FeTrIL",
        "best IMPRINT configuration",
    }
    assert set(table.method) == methods and table.joint_accuracy.notna().all()


def test_report_holds_every_figure_with_its_caption(workdir):
    snakemake(workdir, "--report", "report.zip")
    with zipfile.ZipFile(workdir / "report.zip") as archive:
        names = archive.namelist()
        text = "".join(
            archive.read(n).decode("utf-8", "replace")
            for n in names
            if n.endswith((".html", ".js", ".json"))
        )
    for figure in [
        "cd_diagram.png",
        "accuracy_overview.png",
        "accuracy_vs_proxies.png",
        "fewshot_curves.png",
        "multimodal.png",
        "accuracy_vs_merged.png",
        "nc1_vs_gain.png",
        "nc1.png",
        "table1.csv",
        "transferability.png",
        "similarity.png",
        "stitching.png",
        "stitching_ranks.png",
        "incremental_curves.png",
        "transferability.csv",
        "transferability_agreement.csv",
        "digits.csv",
    ]:
        assert any(n.endswith(figure) for n in names), figure
    # Captions travel with the figures (words from workflow/report/*.rst).
    assert "Spearman" in text and "Papyan" in text
    assert "weighted Kendall" in text and "Kornblith" in text
    assert "Jelasity" in text  # the stitching captions
