"""Datasets and embedding sets on files: a dataset's manifest, a joined dataset's sets, and a
backbone made of other backbones' embeddings of the same images (concatenation)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from imprint.api.common import check_distinct, log, same_images
from imprint.io import load_embeddings, save_embeddings
from imprint.outputs import atomic_path, check_output


def prepare_dataset(
    source: str, data_dir: str, out: str | Path, download: bool = True, classes=None
) -> dict:
    """Download (or find) a registry dataset and write its manifest: images and classes per split."""
    from imprint.data.datasets import SPLITS, build_dataset, dataset_targets

    manifest = {"dataset": source, "data_dir": data_dir}
    for split in SPLITS:
        ds = build_dataset(source, data_dir, split, download=download, classes=classes)
        labels = dataset_targets(ds)
        manifest[split] = {"n": int(labels.shape[0]), "classes": sorted({int(v) for v in labels})}
        log.info(
            "%s %s: %d images, %d classes",
            source,
            split,
            labels.shape[0],
            len(manifest[split]["classes"]),
        )
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def join_embeddings(
    parts: list[str | Path], out: str | Path, offsets: list[int], dataset: str
) -> int:
    """Concatenate the embedding sets of a joined dataset's sources, labels of part j + offsets[j].

    Returns the number of rows written.
    """
    import numpy as np

    sets = [load_embeddings(p) for p in parts]
    dims = {s.dim for s in sets}
    if len(dims) != 1:
        raise ValueError(f"sources of {dataset} have different embedding sizes {sorted(dims)}")
    x = np.concatenate([np.asarray(s.embeddings) for s in sets])
    y = np.concatenate([s.labels + off for s, off in zip(sets, offsets, strict=True)])
    meta = {
        **sets[0].meta,
        "dataset": dataset,
        "sources": [s.meta.get("dataset") for s in sets],
        "label_offsets": list(offsets),
    }
    # Image ids stay distinct across sources: source j's ids shifted by j · 2^40.
    ids = None
    if all(s.ids is not None for s in sets):
        ids = np.concatenate([s.ids + (j << 40) for j, s in enumerate(sets)])
    save_embeddings(out, x, y, meta, ids=ids)
    return int(x.shape[0])


CONCAT_NORMALISATIONS = ("l2", "none")


def concat_embeddings(
    parts: Sequence[str | Path],
    out: str | Path,
    names: Sequence[str],
    normalise: str = "l2",
    extra_meta: dict | None = None,
    force: bool = False,
) -> int:
    """One backbone's embeddings as the concatenation of others' of the same images (Zhang &
    Bottou's rich representations): rows are joined by image identity (each set's ids), not by
    position; each part L2-normalised first (`normalise` "l2", so no part dominates by its
    scale) or as stored ("none"). Rows come in the first part's order. Every part must hold
    the same images with the same labels: a missing image, an extra one or a disagreeing
    label is an error naming the parts; so is one file given twice. An all-zero row has no
    direction and stays zero under "l2" (one warning). Returns the number of rows written.
    force: replace whatever is at `out` (outputs.check_output).
    """
    if normalise not in CONCAT_NORMALISATIONS:
        raise ValueError(
            f"concat normalise '{normalise}' is not allowed; allowed: {', '.join(CONCAT_NORMALISATIONS)}"
        )
    if len(parts) < 2:
        raise ValueError(f"a concatenated backbone needs two or more parts, got {list(names)}")
    check_output(out, "embeddings", {"part": list(parts)}, force, signature=("concat",))
    sets = [load_embeddings(p) for p in parts]
    check_distinct(parts, "a concatenation joins")
    for name, path, found in zip(names, parts, sets, strict=True):
        if found.ids is None:
            raise ValueError(
                f"{path} (part '{name}') records no image ids, so its rows cannot be joined by "
                "image: re-extract it, or give the .npz an 'ids' array (one integer per row)"
            )
    first = sets[0]
    rows_of = same_images(sets, parts, names, "a concatenation joins rows of the same image")
    blocks = [
        _concat_block(found, row_of, normalise, f"{path} (part '{name}')", first.ids)
        for name, path, found, row_of in zip(names, parts, sets, rows_of, strict=True)
    ]
    meta = {
        **(extra_meta or {}),
        "concat": list(names),
        "concat_normalise": normalise,
        "part_dims": [int(b.shape[1]) for b in blocks],
        # The parts' backbones together; None where any part's size is unrecorded.
        "parameter_count": _summed_count([found.meta.get("parameter_count") for found in sets]),
        "dataset": first.meta.get("dataset"),
        "split": first.meta.get("split"),
    }
    joined = np.concatenate(blocks, axis=1)
    save_embeddings(out, joined, first.labels, meta, ids=first.ids, force=force)
    return int(first.ids.size)


def _summed_count(counts: list) -> int | None:
    """The sum of the parts' parameter counts (meta.json), or None if any is unknown."""
    known = [c for c in counts if isinstance(c, int) and not isinstance(c, bool)]
    return sum(known) if len(known) == len(counts) else None


def _concat_block(found, row_of, normalise: str, where: str, ids) -> np.ndarray:
    """One part's rows in the first part's order, float32, L2-normalised under "l2" (an
    all-zero row stays zero, with one warning naming `where` and its first image ids)."""
    import warnings

    rows = slice(None) if row_of is None else row_of
    x = np.asarray(found.embeddings[rows], dtype=np.float32)
    if normalise != "l2":
        return x
    norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        warnings.warn(
            f"{where}: {zero.size} row(s) are all zero (first image ids "
            f"{ids[zero[:5]].tolist()}) and stay zero after L2 normalisation: "
            "that part says nothing about those images",
            stacklevel=4,  # the caller of concat_embeddings (through a comprehension)
        )
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def embed_images(
    model: str,
    source: str | dict,
    split: str,
    out: str | Path,
    data_dir: str | Path = "data",
    weights: str | Path | None = "default",
    force: bool = False,
    **options,
) -> Path:
    """Embeddings of one split of a dataset with one frozen backbone, written as the workflow
    caches them (what `imprint embed` calls).

    model: a registry name or a model by provider and name (`timm/…`, `torchvision/…`,
    `hf/…`; data/providers.py). source: a registry dataset name (downloaded under `data_dir`
    if missing) or a source mapping ({"image_folder": spec} or {"hf": spec}, as the config's
    `datasets.<name>` takes them). weights: "default" (the model's pretrained weights), None
    (its seeded random init) or a state_dict file. options: data.extract.extract_to_file's
    (batch_size, device, limit_per_class, image_size, pool, layers, precision, progress);
    layers: `<module name>[:<pool>]` entries, the inner modules' features (data/layers.py).
    """
    from imprint.data.extract import extract_to_file

    download = not isinstance(source, dict)
    return extract_to_file(
        model, source, split, data_dir, out, weights, download=download, force=force, **options
    )
