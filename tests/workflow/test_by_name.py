"""Models and images by name through the real workflow (.test/by_name): a folder of class
folders, a timm model, a Hugging Face model from a local folder and an open_clip model with
its text tower (zero-shot text proxies), at their random init."""

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
    pytest.importorskip("open_clip")
    d = tmp_path_factory.mktemp("by_name")
    digit_image_folder(d / "images", CLASSES, PER_CLASS)
    tiny_vit(d / "models/tiny_vit")
    install_config("by_name", d)
    done = snakemake(d)
    return d, job_counts(done.stdout + done.stderr)


def test_every_stage_runs_on_models_and_images_by_name(run):
    d, jobs = run
    assert jobs["extract_own_images"] == 6  # 3 backbones x 2 splits, read in place
    assert jobs["extract_text_proxies"] == 1  # the one CLIP-like backbone, for zero_shot*
    assert "prepare_dataset" not in jobs and "extract_embeddings" not in jobs
    results = pd.read_parquet(d / "results/imprint/named.parquet")
    assert set(results.backbone) == {"vit_timm", "vit_hf", "clip_oc"}
    assert set(results.task) == {"four", "pair"}
    table1 = pd.read_csv(d / "results/tables/table1.csv")
    assert table1["method"].str.contains("Linear probe").any()
    assert table1["method"].iloc[-1] == "Zero-shot (text), not in the paper"
    assert table1["n_groups"].iloc[-1] == 1  # clip_oc on task four
    assert len(pd.read_csv(d / "results/collapse/collapse.csv")) == 2
    assert len(pd.read_csv(d / "results/model_choice/transferability.csv")) == 6
    assert (d / "results/stats/named/ranks.csv").exists()
    for backbone, provider in (("vit_timm", "timm"), ("vit_hf", "hf"), ("clip_oc", "open_clip")):
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


def _unit(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_text_proxies_equal_open_clips_own_text_tower(run):
    """The cached text proxies against open_clip itself: the same architecture at the same
    seed, its packaged tokenizer, CLIP's 7 templates with each class's folder name."""
    import open_clip

    d, _ = run
    text = load_embeddings(d / "results/text_proxies/photos/clip_oc")
    assert text.meta["class_names"] == CLASSES and len(text.meta["templates"]) == 7
    np.testing.assert_array_equal(text.labels, [0, 1, 2, 3])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        clip, _, _ = open_clip.create_model_and_transforms(
            "ViT-S-32", pretrained=None, force_image_size=32
        )
    tokenizer = open_clip.get_tokenizer("ViT-S-32")
    expected = []
    with torch.no_grad():
        for name in CLASSES:
            prompts = [t.replace("{}", name) for t in text.meta["templates"]]
            mean = _unit(clip.eval().encode_text(tokenizer(prompts)).numpy()).mean(axis=0)
            expected.append(mean / np.linalg.norm(mean))
    np.testing.assert_allclose(text.embeddings, np.array(expected), rtol=1e-4, atol=1e-5)


def test_zero_shot_and_text_mean_rows_equal_numpy(run):
    """GEN text: argmax cosine to the text proxies; text_mean α = 0: GEN mean's rows exactly;
    α = 0.5 with NORMpre l2: argmax over 0.5·t + 0.5·(mean of unit rows)."""
    d, _ = run
    text = np.asarray(load_embeddings(d / "results/text_proxies/photos/clip_oc").embeddings)
    train = load_embeddings(d / "results/embeddings/photos/clip_oc/train")
    test = load_embeddings(d / "results/embeddings/photos/clip_oc/test")
    res = pd.read_parquet(d / "results/imprint/zero_shot.parquet")
    plain = res[(res.fewshot == -1) & (res.norm_post == "none") & (res.norm_inf == "none")]

    def accuracy(proxies):
        predicted = np.argmax(np.asarray(test.embeddings, np.float64) @ proxies.T, axis=1)
        return 100 * np.mean(predicted == test.labels)

    zero_shot = plain[(plain.gen == "text") & (plain.norm_pre == "none")]
    assert zero_shot.accuracy.tolist() == pytest.approx([accuracy(text)])
    xtr = _unit(train.embeddings)
    means = np.stack([xtr[train.labels == c].mean(0) for c in range(4)])
    mixed = res[(res.gen == "text_mean") & (res.alpha == 0.5) & (res.norm_pre == "l2")]
    # NORMpre l2 goes with NORMinf l2, which scales test rows and so leaves argmax as it is.
    mixed = mixed[(mixed.fewshot == -1) & (mixed.norm_post == "none")]
    assert mixed.accuracy.tolist() == pytest.approx([accuracy(0.5 * text + 0.5 * means)])
    keys = ["norm_pre", "fewshot", "norm_post", "norm_inf", "seed"]
    mean_rows = res[res.gen == "mean"].set_index(keys).sort_index()
    alpha0 = res[(res.gen == "text_mean") & (res.alpha == 0.0)].set_index(keys).sort_index()
    assert len(alpha0) == len(mean_rows) == 12  # 3 NORMpre x NORMinf, 2 few-shot, 2 NORMpost
    for column in ("accuracy", "f1_per_class"):
        assert alpha0[column].tolist() == mean_rows[column].tolist()
    sessions = pd.read_parquet(d / "results/imprint/zero_shot_sessions.parquet")
    assert set(sessions.gen) == {"mean", "text", "text_mean"}
    assert sessions.session.max() == 2  # base 2 classes, then one new class per session
