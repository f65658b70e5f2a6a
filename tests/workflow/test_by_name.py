"""Models and images by name through the real workflow (.test/by_name): a folder of class
folders, a timm model and a Hugging Face model from a local folder, at their random init."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from _snakemake import install_config, job_counts, snakemake
from _trees import digit_image_folder, tiny_vit
from PIL import Image

from imprint.io import load_embeddings

pytestmark = pytest.mark.slow
CLASSES = ["d0", "d1", "d2", "d3"]  # sorted folder names: labels 0..3 in digit order
PER_CLASS = 75


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    pytest.importorskip("timm")
    pytest.importorskip("transformers")
    d = tmp_path_factory.mktemp("by_name")
    digit_image_folder(d / "images", CLASSES, PER_CLASS)
    tiny_vit(d / "models/tiny_vit")
    install_config("by_name", d)
    done = snakemake(d)
    return d, job_counts(done.stdout + done.stderr)


def test_every_stage_runs_on_models_and_images_by_name(run):
    d, jobs = run
    assert jobs["extract_own_images"] == 4  # 2 backbones x 2 splits, read in place
    assert "prepare_dataset" not in jobs and "extract_embeddings" not in jobs
    results = pd.read_parquet(d / "results/imprint/named.parquet")
    assert set(results.backbone) == {"vit_timm", "vit_hf"} and set(results.task) == {"four", "pair"}
    table1 = pd.read_csv(d / "results/tables/table1.csv")
    assert table1["method"].str.contains("Linear probe").any()
    assert len(pd.read_csv(d / "results/collapse/collapse.csv")) == 2
    assert len(pd.read_csv(d / "results/model_choice/transferability.csv")) == 4
    assert (d / "results/stats/named/ranks.csv").exists()
    for backbone, provider in (("vit_timm", "timm"), ("vit_hf", "hf")):
        held_out = round(0.25 * PER_CLASS)  # per class, by the stratified split: 19 of 75
        for split, n in (("train", 4 * (PER_CLASS - held_out)), ("test", 4 * held_out)):
            meta = json.loads(
                (d / f"results/embeddings/photos/{backbone}/{split}/meta.json").read_text()
            )
            assert meta["provider"] == provider and meta["provider_version"]
            assert meta["class_names"] == CLASSES and meta["skipped_images"] == 0
            assert meta["n"] == n


def test_timm_embeddings_equal_a_direct_forward_pass(run):
    """The workflow's rows against timm itself: the same architecture at the same seed, timm's
    own eval transform, on the image files of the held-out split."""
    import timm

    from imprint.data.folder_layout import folder_samples

    d, _ = run
    found = load_embeddings(d / "results/embeddings/photos/vit_timm/test")
    _, samples, _ = folder_samples({"root": d / "images", "test_fraction": 0.25, "seed": 0}, "test")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = timm.create_model("test_vit", pretrained=False, num_classes=0).eval()
    transform = timm.data.create_transform(**timm.data.resolve_model_data_config(model))
    files = [samples[int(i)] for i in found.ids]
    images = torch.stack([transform(Image.open(p).convert("RGB")) for p, _ in files])
    with torch.no_grad():
        direct = model(images).numpy()
    np.testing.assert_array_equal(found.labels, [label for _, label in files])
    np.testing.assert_allclose(found.embeddings, direct, rtol=1e-4, atol=1e-5)


def test_nearest_class_mean_accuracy_equals_the_results_row(run):
    """GEN mean with every norm L2 on task `four` of the hf backbone, recomputed in numpy."""
    d, _ = run

    def rows(split):
        s = load_embeddings(d / f"results/embeddings/photos/vit_hf/{split}")
        x = np.asarray(s.embeddings, np.float64)
        return x / np.linalg.norm(x, axis=1, keepdims=True), s.labels

    (xtr, ytr), (xte, yte) = rows("train"), rows("test")
    means = np.stack([xtr[ytr == c].mean(0) for c in range(4)])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    expected = 100 * np.mean(np.argmax(xte @ means.T, axis=1) == yte)
    res = pd.read_parquet(d / "results/imprint/named.parquet")
    row = res[
        (res.backbone == "vit_hf")
        & (res.task == "four")
        & (res.gen == "mean")
        & (res.norm_pre == "l2")
        & (res.norm_post == "l2")
        & (res.norm_inf == "l2")
        & (res["agg"] == "max")  # res.agg is DataFrame.agg
    ]
    assert len(row) == 2  # two seeds, one deterministic GEN
    assert row.accuracy.tolist() == pytest.approx([expected] * 2)
