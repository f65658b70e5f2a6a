"""Text proxies on files: the classes of an embedding set, prompted and encoded by a CLIP-like
model's text tower (what `imprint text-proxies` and the workflow's extract_text_proxies call)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from imprint.data.prompts import DEFAULT_TEMPLATES, resolve_templates
from imprint.io import load_embeddings

# ImageNet's folders are WordNet ids (n01440764): as prompts they say nothing.
_WORDNET_ID = re.compile(r"n\d{8}")


def class_names_by_label(
    embeddings: str | Path, class_names: list[str] | None = None, where: str = "--class-names"
) -> dict[int, str]:
    """{label: name} for every label of an embedding set: from `class_names` (indexed by
    label) where given, else from the class names its meta.json records."""
    data = load_embeddings(embeddings)
    labels = sorted(int(v) for v in np.unique(data.labels))
    names = class_names if class_names is not None else data.meta.get("class_names")
    if names is None:
        raise ValueError(
            f"{embeddings}: its meta.json records no class names; give them ({where}: the "
            "names by label)"
        )
    beyond = [label for label in labels if not 0 <= label < len(names)]
    if beyond:
        raise ValueError(
            f"{embeddings}: label(s) {beyond[:5]} have no name among the {len(names)} class "
            f"names ({where if class_names is not None else 'its meta.json'})"
        )
    chosen = {label: str(names[label]) for label in labels}
    if sum(bool(_WORDNET_ID.fullmatch(n)) for n in chosen.values()) > len(chosen) / 2:
        warnings.warn(
            f"{embeddings}: the class names are WordNet ids (e.g. {next(iter(chosen.values()))}),"
            f" which prompts read as they are; give readable names ({where})",
            stacklevel=2,
        )
    return chosen


def make_text_proxies(
    embeddings: str | Path,
    out: str | Path,
    model: str,
    backbone: str | None = None,
    templates: str | list = DEFAULT_TEMPLATES,
    class_names: list[str] | None = None,
    weights: str | Path | None = "default",
    image_size: int | None = None,
    pool: str | None = None,
    force: bool = False,
    where: str = "--class-names",
) -> Path:
    """The text proxies of an embedding set's classes under `model` (`<provider>/<name>`,
    CLIP-like), written as an embedding set (one row a class). `weights`, `image_size` and
    `pool` as the images were embedded with, so the towers are the same model's."""
    from imprint.data.text_proxies import text_proxies_to_file
    from imprint.outputs import check_output

    weights_file = None if weights in (None, "default") else weights
    inputs = {"embeddings": embeddings, "weights": weights_file}
    check_output(out, "embeddings", inputs, force, flag="text proxies output")
    names = class_names_by_label(embeddings, class_names, where)
    return text_proxies_to_file(
        backbone or model,
        model,
        names,
        resolve_templates(templates),
        out,
        weights=weights,
        image_size=image_size,
        pool=pool,
        force=force,
    )
