"""The real Snakemake workflow on a tiny offline config: outputs, caching, reruns, lint."""

import json
import re
import zipfile

import numpy as np
import pandas as pd
import pytest
import yaml
from _snakemake import REPO, job_counts, snakemake
from PIL import Image

from imprint.io import load_embeddings

TINY = {
    "datasets": {"digits": {"sources": ["digits"]}},
    "backbones": {"pixels": {}, "resnet18_random": {"image_size": 16}},
    "extraction": {"batch_size": 64, "limit_per_class": 30},
    "engine": {"ls_precision": "float32"},
    "mappings": {
        "none": {},
        "halves": {d: int(d >= 5) for d in range(10)},
        # Remappings named as ImageNet's map{i}-{j}: i = 5 classes per label, variations j.
        "map5-0": {d: int(d >= 5) for d in range(10)},
        "map5-1": {d: d % 2 for d in range(10)},
    },
    "tasks": {"short": [0, 1, 2], "binary": [0, 1]},
    "experiments": {
        "tiny": {
            "grid": {
                "parts": [
                    {
                        "seeds": [1, 2],
                        "norm_pre": ["none", "l2"],
                        "norm_inf": ["none", "l2"],
                        "gen": ["mean", "kmeans", "all", "ls"],
                        "k": [1, 3],
                        "norm_post": ["none", "l2", "quantile"],
                    },
                    {
                        "seeds": [1, 2],
                        "gen": ["mean"],
                        "agg": ["mnn"],
                        "distance": ["cosine", "euclidean"],
                        "weighting": ["uniform", "weighted_by_distance"],
                        "m": [1, 3],
                    },
                    {"seeds": [1, 2], "gen": ["kmeans"], "k": [2], "fewshot": [-1, 2, 5]},
                ]
            },
            "datasets": ["digits"],
            "backbones": ["pixels", "resnet18_random"],
            "mappings": ["none"],
            "tasks": ["short", "binary"],
            "figures": [
                "cd_diagram",
                "accuracy_overview",
                "accuracy_vs_proxies",
                "fewshot_curves",
            ],
            "figure_options": {"cd_diagram": {"highlight": ["gen"]}},
        },
        "merged": {
            "grid": {
                "seeds": [1],
                "norm_inf": ["l2"],
                "norm_pre": ["l2"],
                "norm_post": ["l2"],
                "gen": ["kmeans"],
                "k": [1, 2, 4],
            },
            "datasets": ["digits"],
            "backbones": ["pixels"],
            "mappings": ["none", "halves", "map5-0", "map5-1"],
            "tasks": ["binary"],
            "figures": ["multimodal", "nc1_vs_gain"],
            "figure_options": {"nc1_vs_gain": {"gain_k": 4}},
        },
    },
    "table1": {"experiments": ["tiny"]},
    "collapse": {"datasets": ["digits"], "backbones": ["pixels"], "mappings": ["none", "halves"]},
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("wf")
    config = dict(TINY, data_dir=str(d / "data"))
    (d / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
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
    from imprint.grid import expand_grid

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
    from imprint.cli import main

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
    assert "the best configuration per gen (3)" in summary  # mean, kmeans, all; ls left out
    assert "Maximal groups no pair of which differs:" in summary
    ranks = pd.read_csv(workdir / "results/stats/tiny/ranks.csv")
    assert ranks.average_rank.is_monotonic_increasing and len(ranks) > 30
    assert set(ranks.gen) == {"mean", "kmeans", "all"}
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
    ]:
        for ext in ("pdf", "png"):
            assert (workdir / f"results/figures/{fig}.{ext}").stat().st_size > 5000, fig
    assert (workdir / "logs/imprint_grid/tiny/digits/pixels/none/short.log").exists()


def test_second_run_does_nothing_and_a_deleted_table_reruns_alone(workdir):
    again = snakemake(workdir, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
    # The batch size sets speed, not results: changing it reruns nothing.
    smaller = dict(
        TINY, data_dir=str(workdir / "data"), extraction={**TINY["extraction"], "batch_size": 16}
    )
    (workdir / "smaller.yaml").write_text(yaml.safe_dump(smaller, sort_keys=False))
    again = snakemake(workdir, "-n", "--configfile", str(workdir / "smaller.yaml"))
    assert "Nothing to be done" in again.stdout + again.stderr
    # A configured λ reruns the jobs whose grid has ls or kls on that backbone, nothing else:
    # not its extractions, not the experiment without ls ("merged"), not the other backbone.
    lam = dict(
        TINY,
        data_dir=str(workdir / "data"),
        backbones={**TINY["backbones"], "pixels": {"ls_lambda": 0.5}},
    )
    (workdir / "lambda.yaml").write_text(yaml.safe_dump(lam, sort_keys=False))
    dry = snakemake(workdir, "-n", "--configfile", str(workdir / "lambda.yaml"))
    plan = job_counts(dry.stdout + dry.stderr)
    assert plan["imprint_grid"] == 2 and "extract_embeddings" not in plan
    rerun = re.findall(r"rule imprint_grid:\n(?:.*\n)*?\s+output: (\S+)", dry.stdout)
    assert sorted(rerun) == [
        f"results/imprint/tiny/digits/pixels/none/{t}.parquet" for t in ("binary", "short")
    ]
    (workdir / "results/imprint/tiny/digits/pixels/none/short.parquet").unlink()
    dry = snakemake(workdir, "-n")
    plan = job_counts(dry.stdout + dry.stderr)
    assert plan["imprint_grid"] == 1 and plan["gather_results"] == 1
    assert "extract_embeddings" not in plan and "compute_collapse" not in plan
    assert set(plan) <= {
        "imprint_grid",
        "gather_results",
        "rank_configurations",
        "summarise_table1",
        "plot_results",
        "all",
    }
    snakemake(workdir)
    final = snakemake(workdir, "-n")
    assert "Nothing to be done" in final.stdout + final.stderr


def test_a_typo_in_the_config_fails_at_once_naming_the_key(tmp_path):
    bad = dict(TINY, data_dir=str(tmp_path), experimnts={})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(bad))
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0 and "experimnts" in proc.stdout + proc.stderr
    bad = dict(TINY, data_dir=str(tmp_path))
    bad["experiments"] = {"x": dict(TINY["experiments"]["merged"], backbones=["resnet19"])}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(bad))
    proc = snakemake(tmp_path, "-n", check=False)
    assert (
        proc.returncode != 0
        and "'resnet19' is not defined under backbones" in proc.stdout + proc.stderr
    )
    bad = dict(TINY, data_dir=str(tmp_path))
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
    bad = dict(TINY, data_dir=str(tmp_path), engine={"ls_precision": "float16"})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(bad))
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0 and "float16" in proc.stdout + proc.stderr


def _ncm_accuracy(train, test, mapping):
    """Direct numpy: L2 rows, per-label means, L2 means, argmax inner product (GEN mean with
    NORMpre/NORMpost/NORMinf l2), on the rows whose label the mapping keeps."""

    def rows(split):
        x = np.load(split / "embeddings.npy").astype(np.float64)
        y = np.load(split / "labels.npy")
        keep = np.isin(y, list(mapping))
        x = x[keep] / np.linalg.norm(x[keep], axis=1, keepdims=True)
        return x, np.array([mapping[int(v)] for v in y[keep]])

    (xtr, ytr), (xte, yte) = rows(train), rows(test)
    labels = np.unique(ytr)
    means = np.stack([xtr[ytr == c].mean(0) for c in labels])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    return 100 * np.mean(labels[np.argmax(xte @ means.T, axis=1)] == yte)


def test_combidigits_join_and_the_papers_imagenet_selection_run_end_to_end(tmp_path):
    """A joined dataset (sources offset by 10, mapped back by combidigits) and ImageNet's 145
    paper classes from a local train/val/<wnid>/*.JPEG tree, with single remappings and an
    imagenet50 task, through imprinting, collapse and the §5.3 figures; the selections and
    mappings are recomputed here from the reference's seeds."""
    import random

    from imprint.datasets import imagenet1k_wnids

    random.seed(42)
    fifty = random.sample(range(1000), 50)
    random.seed(420)
    hundred = random.sample(range(1000), 100)
    random.shuffle(hundred)  # variation 0 of the remappings
    map1_0 = {c: j for j in range(10) for c in hundred[10 * j : 10 * j + 1]}
    map10_0 = {c: j for j in range(10) for c in hundred[10 * j : 10 * j + 10]}
    rand_0 = {c: i for i, c in enumerate(fifty[:10])}
    paper_classes = sorted(set(fifty) | set(hundred))
    wnids = imagenet1k_wnids()
    unused = next(c for c in range(1000) if c not in paper_classes)
    rng = np.random.default_rng(0)
    for c in [*paper_classes, unused]:
        colour = rng.uniform(0, 255, 3)
        for split, n in (("train", 2), ("val", 1)):
            folder = tmp_path / "data/ImageNet" / split / wnids[c]
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(n):
                pixels = np.clip(colour + rng.normal(0, 8, (16, 16, 3)), 0, 255)
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{wnids[c]}_{k}.JPEG")
    per_dataset = {
        "combo": ["combidigits"],
        "ImageNet": ["map1-0", "map10-0", "imagenet50-0"],
    }
    config = {
        "data_dir": "data",
        "datasets": {
            "combo": {"sources": ["digits", "digits"]},
            "ImageNet": {"sources": ["ImageNet"], "classes": "imagenet_paper", "download": False},
        },
        "backbones": {"pixels": {}},
        "extraction": {"limit_per_class": 20},
        "mappings": {"combidigits": "combidigits", "imagenet": "imagenet100", "rand": "imagenet50"},
        "tasks": {"all": list(range(10))},
        "experiments": {
            "multimodal": {
                "grid": {
                    "seeds": [1],
                    "norm_pre": ["l2"],
                    "norm_post": ["l2"],
                    "norm_inf": ["l2"],
                    "gen": ["mean", "kmeans"],
                    "k": [1, 2],
                },
                "datasets": ["combo", "ImageNet"],
                "backbones": ["pixels"],
                "mappings": per_dataset,
                "tasks": ["all"],
                "figures": ["multimodal", "nc1_vs_gain"],
                "figure_options": {"nc1_vs_gain": {"gain_k": 2, "pool_variations": True}},
            }
        },
        "collapse": {
            "datasets": ["combo", "ImageNet"],
            "backbones": ["pixels"],
            "mappings": per_dataset,
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path)

    emb = tmp_path / "results/embeddings"
    source = load_embeddings(emb / "sources/digits/pixels/train")
    joined = load_embeddings(emb / "combo/pixels/train")
    assert joined.meta["label_offsets"] == [0, 10]
    assert joined.meta["sources"] == ["digits", "digits"]
    np.testing.assert_array_equal(joined.labels, np.r_[source.labels, source.labels + 10])
    np.testing.assert_array_equal(
        np.asarray(joined.embeddings)[: len(source.labels)], source.embeddings
    )
    imagenet = load_embeddings(emb / "ImageNet/pixels/train")
    # Exactly the 145 (the folder of another class is there but never read), two images each,
    # through the per-image PIL path JPEG files take.
    assert sorted(set(imagenet.labels.tolist())) == paper_classes
    assert len(imagenet.labels) == 2 * 145 and imagenet.meta["path"] == "per_image"

    res = pd.read_parquet(tmp_path / "results/imprint/multimodal.parquet")
    mean = res[res.gen == "mean"].set_index(["dataset", "mapping"]).accuracy
    combidigits = {d + 10 * j: d for j in range(2) for d in range(10)}
    cases = [
        ("combo", "combidigits", "combo", combidigits),
        ("ImageNet", "map1-0", "ImageNet", map1_0),
        ("ImageNet", "map10-0", "ImageNet", map10_0),
        ("ImageNet", "imagenet50-0", "ImageNet", rand_0),
    ]
    for dataset, mapping, folder, labels in cases:
        expected = _ncm_accuracy(
            emb / folder / "pixels/train", emb / folder / "pixels/test", labels
        )
        assert mean[(dataset, mapping)] == pytest.approx(expected)
    k2 = res[(res.gen == "kmeans") & (res.k == 2)]
    assert (k2.n_proxies == 20).all()  # every label has at least two training rows

    collapse = pd.read_csv(tmp_path / "results/collapse/collapse.csv")
    assert set(zip(collapse.dataset, collapse.mapping)) == {(d, m) for d, m, *_ in cases}
    assert (collapse.n_classes == 10).all()
    counts = collapse.set_index("mapping").n_samples
    assert counts["map10-0"] == 2 * 100 and counts["map1-0"] == counts["imagenet50-0"] == 2 * 10
    for name in ("multimodal", "nc1_vs_gain"):
        assert (tmp_path / f"results/figures/multimodal/{name}.png").stat().st_size > 10_000
    gains = pd.read_csv(tmp_path / "results/tables/multimodal/nc1_vs_gain.csv")
    assert len(gains) >= 3


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
    ]:
        assert any(n.endswith(figure) for n in names), figure
    # Captions travel with the figures (words from workflow/report/*.rst).
    assert "Spearman" in text and "Papyan" in text
