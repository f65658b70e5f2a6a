"""Static baselines: what a backbone is, not what it does on the task. embedding_size: the
feature dimension; parameter_count: the backbone's number of parameters, recorded at extraction
(data/extract.py writes it to the embeddings' meta.json; the transferability command reads
it). Higher is expected to transfer better for both."""

from __future__ import annotations

import numpy as np


def embedding_size(features: np.ndarray, labels: np.ndarray) -> int:
    """The feature dimension D of features [n, D] (labels unused); defined on any rows."""
    return int(np.shape(features)[1])
