"""The static baselines: embedding_size (analysis/transferability/static.py) and
parameter_count, counted at extraction (data/extract.py), summed by a concatenation
(api/data.py) and read back by the transferability command (api/model_choice.py)."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from imprint.analysis.transferability.static import embedding_size
from imprint.data.extract import parameter_count


def test_embedding_size_is_the_feature_dimension_whatever_the_rows():
    assert embedding_size(np.zeros((3, 17), np.float32), np.arange(3)) == 17
    assert embedding_size(np.ones((40, 2048)), np.repeat([0, 1], 20)) == 2048


def test_parameter_count_sums_numel_and_is_none_without_parameters():
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2, bias=False))
    net.requires_grad_(False)  # frozen parameters count too
    assert parameter_count(net) == 4 * 3 + 3 + 3 * 2
    assert parameter_count(nn.Identity()) is None  # the pixels backbone


def test_parameter_count_of_an_open_clip_model_is_its_image_tower():
    from imprint.data.text_towers import OpenClipImage

    clip = nn.Module()
    clip.visual = nn.Linear(5, 4)  # 24
    clip.transformer = nn.Linear(7, 7)  # text tower: not counted
    clip.logit_scale = nn.Parameter(torch.ones(()))
    assert parameter_count(OpenClipImage(clip, "ViT-B-32")) == 24


def test_parameter_count_of_a_joint_transformers_model_leaves_out_the_text_side():
    class Joint(nn.Module):
        def __init__(self):
            super().__init__()
            self.vision_model, self.visual_projection = nn.Linear(3, 3), nn.Linear(3, 2)
            self.text_model, self.text_projection = nn.Linear(9, 9), nn.Linear(9, 2)
            self.logit_scale = nn.Parameter(torch.ones(()))

        def get_image_features(self, x):
            return x

        def get_text_features(self, x):
            return x

    assert parameter_count(Joint()) == 12 + 8


def _write(path, dim, meta, rows=30, seed=0):
    from imprint.io import save_embeddings

    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1, 2], rows // 3)
    x = rng.standard_normal((rows, dim)) + y[:, None]
    save_embeddings(path, x, y, meta, ids=np.arange(rows))
    return path


def test_transferability_reads_the_parameter_count_from_meta_json(tmp_path):
    from imprint.api.model_choice import transferability_file

    known = _write(tmp_path / "known", 6, {"parameter_count": 11_176_512})
    result = transferability_file(known)
    assert result["parameter_count"] == 11_176_512 and result["embedding_size"] == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # unknown: null, and no warning
        unknown = transferability_file(_write(tmp_path / "old", 6, {}))
        npz = transferability_file(_write(tmp_path / "t.npz", 6, None))
    assert unknown["parameter_count"] is None and npz["parameter_count"] is None


@pytest.mark.parametrize(("counts", "expected"), [((100, 23), 123), ((100, None), None)])
def test_a_concatenation_records_the_sum_of_its_parts_counts(tmp_path, counts, expected):
    from imprint.api.data import concat_embeddings
    from imprint.api.model_choice import transferability_file
    from imprint.io import load_embeddings

    parts = []
    for i, count in enumerate(counts):
        meta = {} if count is None else {"parameter_count": count}
        parts.append(_write(tmp_path / f"p{i}", 4 + i, meta, seed=i))
    out = tmp_path / "joined"
    concat_embeddings(parts, out, ["a", "b"])
    assert load_embeddings(out).meta.get("parameter_count") == expected
    result = transferability_file(out)
    assert result["parameter_count"] == expected and result["embedding_size"] == 9
