"""Image ids in embedding sets, and backbones concatenated by image id (not by position)."""

import numpy as np
import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from imprint.api.data import concat_embeddings
from imprint.data.extract import source_indices
from imprint.io import ChecksumError, EmbeddingFileError, load_embeddings, save_embeddings


def _set(path, x, y, ids):
    save_embeddings(path, x, y, {"dataset": "d", "split": "train"}, ids=ids)
    return path


def test_ids_travel_with_the_set_and_are_verified(tmp_path):
    x, y = np.arange(12, dtype=np.float32).reshape(4, 3), np.array([0, 1, 0, 1])
    _set(tmp_path / "a", x, y, [7, 3, 9, 1])
    found = load_embeddings(tmp_path / "a")
    assert found.ids.tolist() == [7, 3, 9, 1] and found.ids.dtype == np.int64
    save_embeddings(tmp_path / "b.npz", x, y, ids=[7, 3, 9, 1])
    assert load_embeddings(tmp_path / "b.npz").ids.tolist() == [7, 3, 9, 1]
    assert load_embeddings(_set(tmp_path / "none", x, y, None)).ids is None
    np.save(tmp_path / "a" / "ids.npy", np.array([7, 3, 9, 2]))  # changed behind the workflow
    with pytest.raises(ChecksumError, match="ids.npy"):
        load_embeddings(tmp_path / "a")
    with pytest.raises(EmbeddingFileError, match="image ids must be distinct; id 3 appears 2"):
        save_embeddings(tmp_path / "c", x, y, ids=[3, 3, 1, 2])
    with pytest.raises(EmbeddingFileError, match="must be 4 integers"):
        save_embeddings(tmp_path / "c", x, y, ids=[1, 2])


def test_source_indices_see_through_nested_subsets():
    base = TensorDataset(torch.arange(10))
    nested = Subset(Subset(base, [9, 7, 5, 3, 1]), [4, 0, 2])
    assert source_indices(nested).tolist() == [1, 9, 5]
    assert source_indices(base).tolist() == list(range(10))


def test_concat_joins_rows_by_image_id_and_normalises_each_part(tmp_path):
    rng = np.random.default_rng(0)
    ids = np.array([10, 20, 30, 40, 50])
    y = np.array([0, 1, 1, 0, 2])
    a = rng.normal(size=(5, 3)).astype(np.float32)
    b = rng.normal(size=(5, 2)).astype(np.float32)
    perm = np.array([3, 0, 4, 1, 2])  # part b stores the same images in another order
    _set(tmp_path / "a", a, y, ids)
    _set(tmp_path / "b", b[perm], y[perm], ids[perm])
    n = concat_embeddings([tmp_path / "a", tmp_path / "b"], tmp_path / "ab", ["a", "b"])
    out = load_embeddings(tmp_path / "ab")
    assert n == 5 and out.ids.tolist() == ids.tolist() and out.labels.tolist() == y.tolist()
    # By hand: image i's row is [a_i / ‖a_i‖, b_i / ‖b_i‖], whatever order b was stored in.
    expected = np.hstack(
        [a / np.linalg.norm(a, axis=1, keepdims=True), b / np.linalg.norm(b, axis=1, keepdims=True)]
    )
    np.testing.assert_allclose(out.embeddings, expected, rtol=1e-6)
    assert out.meta["part_dims"] == [3, 2] and out.meta["concat_normalise"] == "l2"
    concat_embeddings([tmp_path / "a", tmp_path / "b"], tmp_path / "raw", ["a", "b"], "none")
    np.testing.assert_array_equal(load_embeddings(tmp_path / "raw").embeddings, np.hstack([a, b]))


def test_concat_refuses_other_images_labels_or_missing_ids(tmp_path):
    x, y = np.ones((3, 2), np.float32), np.array([0, 1, 2])
    _set(tmp_path / "a", x, y, [1, 2, 3])
    _set(tmp_path / "other", x, y, [1, 2, 4])
    with pytest.raises(
        ValueError,
        match=r"not embeddings of the same images: 1 image id\(s\) only in 'a', 1 only in 'o'",
    ):
        concat_embeddings([tmp_path / "a", tmp_path / "other"], tmp_path / "out", ["a", "o"])
    _set(tmp_path / "fewer", x[:2], y[:2], [1, 2])
    with pytest.raises(ValueError, match="1 image id\\(s\\) only in 'a', 0 only in 'f'"):
        concat_embeddings([tmp_path / "a", tmp_path / "fewer"], tmp_path / "out", ["a", "f"])
    _set(tmp_path / "relabelled", x, np.array([0, 2, 1]), [1, 2, 3])
    with pytest.raises(ValueError, match="labels image id 2 2, .* 1"):
        concat_embeddings([tmp_path / "a", tmp_path / "relabelled"], tmp_path / "out", ["a", "r"])
    _set(tmp_path / "anonymous", x, y, None)
    with pytest.raises(ValueError, match="records no image ids"):
        concat_embeddings([tmp_path / "a", tmp_path / "anonymous"], tmp_path / "out", ["a", "n"])
    with pytest.raises(ValueError, match="allowed: l2, none"):
        concat_embeddings([tmp_path / "a", tmp_path / "a"], tmp_path / "out", ["a", "b"], "max")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_concat_keeps_the_first_parts_row_order_when_it_is_not_sorted(tmp_path):
    # Three parts of the same 6 images, each stored in its own order, none sorted by id: the
    # joined rows follow the first part's order, row i = the L2-normalised parts of image
    # first_ids[i].
    rng = np.random.default_rng(1)
    label_of = {1: 0, 3: 1, 5: 2, 7: 0, 9: 1, 11: 2}
    orders = [[7, 3, 9, 1, 11, 5], [1, 9, 5, 11, 7, 3], [11, 5, 3, 7, 9, 1]]
    dims = [3, 2, 4]
    parts = []
    for name, order, dim in zip("abc", orders, dims, strict=True):
        x = (rng.normal(size=(6, dim)) + 3.0).astype(np.float32)  # norms far from 1
        _set(tmp_path / name, x, np.array([label_of[i] for i in order]), order)
        parts.append(dict(zip(order, x.astype(np.float64), strict=True)))
    paths = [tmp_path / name for name in "abc"]
    assert concat_embeddings(paths, tmp_path / "abc", ["a", "b", "c"]) == 6
    out = load_embeddings(tmp_path / "abc")
    assert out.ids.tolist() == orders[0]
    assert out.labels.tolist() == [label_of[i] for i in orders[0]]
    for row, image in zip(out.embeddings, orders[0], strict=True):
        expected = np.concatenate([p[image] / np.linalg.norm(p[image]) for p in parts])
        np.testing.assert_allclose(row, expected, rtol=1e-6)


def test_the_row_order_check_catches_a_concat_that_sorts_by_id(tmp_path, monkeypatch):
    # The wrong version: the joined set written in sorted-id order (io.save_embeddings, which
    # concat_embeddings calls, wrapped to sort the rows it is given by id).
    import imprint.api.data

    real, calls = imprint.api.data.save_embeddings, []

    def sorted_by_id(path, embeddings, labels, meta=None, where=None, ids=None, force=False):
        calls.append(path)
        order = np.argsort(ids, kind="stable")
        x, y, ids = np.asarray(embeddings)[order], np.asarray(labels)[order], np.asarray(ids)
        return real(path, x, y, meta, where, ids=ids[order], force=force)

    monkeypatch.setattr(imprint.api.data, "save_embeddings", sorted_by_id)
    with pytest.raises(AssertionError):
        test_concat_keeps_the_first_parts_row_order_when_it_is_not_sorted(tmp_path)
    assert calls == [tmp_path / "abc"], "concat_embeddings no longer writes through save_embeddings"
