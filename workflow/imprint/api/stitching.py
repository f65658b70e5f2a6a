"""Can one model stand in for another? on files (not in the paper): stitching between the
embedding sets of the same images from several backbones (what `imprint stitch` and the
workflow's compute_stitching call); the computations are in analysis/stitching.py."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from imprint.api.common import check_distinct, put_first, same_images
from imprint.io import load_embeddings, write_table
from imprint.outputs import check_output

if TYPE_CHECKING:
    import pandas as pd

# What a stitching table and a rank table hold (an earlier one is replaced, any other kept).
STITCHING_COLUMNS = (
    *("source", "target", "matching", "classifier", "residual", "train_residual"),
    *("stitched_accuracy", "target_accuracy", "penalty", "ood_fraction", "rows"),
)
RANK_COLUMNS = ("source", "target", "rank", "matching", "classifier", "stitched_accuracy", "cka")
WHY = "stitching maps one backbone's embedding of an image onto another's of the same image"


def _aligned(files: Sequence[str | Path], names: list[str]) -> tuple[list[np.ndarray], np.ndarray]:
    """Every set's embeddings in the first set's image order (by image id where they record
    ids; sets of other images refused), and the first set's labels."""
    sets = [load_embeddings(f) for f in files]
    rows = same_images(sets, [str(f) for f in files], names, WHY)
    arrays = [
        np.array(s.embeddings if r is None else s.embeddings[r], dtype=np.float32)
        for s, r in zip(sets, rows, strict=True)
    ]
    return arrays, np.asarray(sets[0].labels)


def _class_indices(train_labels: np.ndarray, test_labels: np.ndarray, where: str):
    """Labels as 0..C-1 in sorted order of the training classes; a test class the training
    rows lack is refused (no classifier has a proxy for it)."""
    classes = np.unique(train_labels)
    missing = sorted(set(np.unique(test_labels).tolist()) - set(classes.tolist()))
    if missing:
        raise ValueError(f"{where}: test classes {missing[:5]} have no training rows")
    return np.searchsorted(classes, train_labels), np.searchsorted(classes, test_labels)


def _k_rows(rows: int | None, n: int) -> int | None:
    """direct_k's rows, or None (left out, one warning) where they are not fewer than all."""
    if rows is not None and rows >= n:
        import warnings

        warnings.warn(
            f"stitching: {rows} rows for direct_k is not fewer than the {n} training rows (it "
            "would equal direct); direct_k is left out",
            stacklevel=3,
        )
        return None
    return rows


def stitch_files(
    train: Sequence[str | Path],
    test: Sequence[str | Path],
    out: str | Path | None = None,
    ranks_out: str | Path | None = None,
    names: Sequence[str] | None = None,
    rows: int | None = 1000,
    seed: int = 0,
    extra_columns: dict | None = None,
    force: bool = False,
    norms: Sequence[str] = ("l2", "l2", "l2"),
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Stitching between every ordered pair of backbones, given each one's training and test
    embedding sets of the same images (`train[i]`, `test[i]`, named `names[i]`): each matching
    (direct, direct on `rows` training rows, orthogonal, task loss) mapped under the target's
    classifiers (imprinted means, linear probe), with the target's own accuracy, the penalty
    and the share of mapped test rows out of the target's distribution; with `ranks_out`, the
    same against the source's rank under the imprinted classifier
    (analysis/stitching.rank_sensitivity). norms: the imprinted classifier's (NORMpre,
    NORMpost, NORMinf), each none or l2 (default Qi et al.'s). Returns both tables
    (the second None without `ranks_out`). force: replace whatever is at the outputs."""
    import pandas as pd

    from imprint.analysis import stitching

    if len(train) < 2 or len(train) != len(test):
        raise ValueError(
            f"stitching needs two or more backbones, a training and a test set each; got "
            f"{len(train)} training and {len(test)} test sets"
        )
    names = [str(f) for f in train] if names is None else list(names)
    inputs = {"embeddings": [*train, *test]}
    for path, signature in ((out, STITCHING_COLUMNS), (ranks_out, RANK_COLUMNS)):
        if path:
            check_output(path, "table", inputs, force, signature=signature)
    check_distinct(train, "stitching compares")
    check_distinct(test, "stitching compares")
    train_x, train_y = _aligned(train, names)
    test_x, test_y = _aligned(test, names)
    train_y, test_y = _class_indices(train_y, test_y, str(train[0]))
    rows = _k_rows(rows, len(train_y))
    sets = {name: (a, b) for name, a, b in zip(names, train_x, test_x, strict=True)}
    options = {"seed": seed, "norms": tuple(norms)}
    table = pd.DataFrame(stitching.stitch_all(sets, train_y, test_y, k_rows=rows, **options))
    ranks = None
    if ranks_out:
        # The imprinted classifier only: the figure's question (a probe per target is costly).
        found = stitching.rank_sensitivity_all(
            sets, train_y, test_y, classifiers=("mean",), **options
        )
        ranks = pd.DataFrame(found)
    for frame, path in ((table, out), (ranks, ranks_out)):
        if frame is not None:
            put_first(frame, extra_columns)
            if path:
                write_table(frame, path, force)
    return table, ranks
