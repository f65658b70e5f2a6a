"""A joined dataset and ImageNet's paper classes through the real workflow, on .test/joined (its
own file so that a parallel worker runs it beside tests/workflow/test_workflow.py)."""

import numpy as np
import pandas as pd
import pytest
from _snakemake import install_config, snakemake
from _trees import imagenet_tree, paper_imagenet_classes

from imprint.io import load_embeddings

pytestmark = pytest.mark.slow


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
    draws = paper_imagenet_classes()
    map1_0, map10_0, rand_0 = draws["map1-0"], draws["map10-0"], draws["imagenet50-0"]
    paper_classes = imagenet_tree(tmp_path)
    install_config("joined", tmp_path)
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

    # A concatenated backbone: each image's two representations, L2-normalised, side by side,
    # rows matched by image id (joined sources' ids shifted apart, ImageNet's folder indices).
    for dataset in ("combo", "ImageNet"):
        for split in ("train", "test"):
            parts = [
                load_embeddings(emb / dataset / b / split) for b in ("pixels", "pixels_random_relu")
            ]
            both = load_embeddings(emb / dataset / "pixels_and_relu" / split)
            assert both.meta["concat"] == ["pixels", "pixels_random_relu"]
            rows = {int(i): r for r, i in enumerate(parts[1].ids)}
            other = np.asarray(parts[1].embeddings)[[rows[int(i)] for i in parts[0].ids]]
            expected = np.hstack(
                [
                    x / np.linalg.norm(x, axis=1, keepdims=True)
                    for x in (np.asarray(parts[0].embeddings, np.float64), other.astype(np.float64))
                ]
            )
            np.testing.assert_allclose(both.embeddings, expected, rtol=1e-6, atol=1e-7)
            np.testing.assert_array_equal(both.ids, parts[0].ids)
            np.testing.assert_array_equal(both.labels, parts[0].labels)
    combo_ids = load_embeddings(emb / "combo/pixels/train").ids
    assert len(set(combo_ids.tolist())) == len(combo_ids)  # the two sources' ids kept apart

    res = pd.read_parquet(tmp_path / "results/imprint/multimodal.parquet")
    assert set(res.backbone) == {"pixels", "pixels_and_relu"}
    res = res[res.backbone == "pixels"]
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
