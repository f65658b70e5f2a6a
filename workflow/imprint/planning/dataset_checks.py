"""Datasets of the user's own images at planning: `image_folder` trees and `hf` datasets.

A dataset with one of these keys (a source kind) reads that source alone; its classes are the
folder names (listed here without torch) or, for a local `save_to_disk` directory, the label
column's ClassLabel names (read from its dataset_info.json, without the library).
"""

from __future__ import annotations

import json
from pathlib import Path

from imprint.data.folder_layout import FolderError, folder_classes
from imprint.planning.errors import ConfigError

# Source kinds, in place of registry names: a dataset's key and the source name it gets.
SOURCE_KINDS = ("image_folder", "hf")


def source_kind(config: dict, dataset: str) -> str | None:
    """The source kind of a dataset (image_folder, hf), or None for registry sources."""
    kinds = [k for k in SOURCE_KINDS if k in config["datasets"][dataset]]
    if len(kinds) > 1:
        raise ConfigError(f"datasets.{dataset}: give one of {', '.join(kinds)}, not both")
    return kinds[0] if kinds else None


def own_classes(config: dict, dataset: str) -> list[str] | None:
    """The class names (label = position) of an image_folder dataset or of a local hf
    directory with a ClassLabel column; None where planning cannot know them or for registry
    sources. A tree that cannot be a dataset is a ConfigError naming the key and the folder."""
    kind = source_kind(config, dataset)
    spec = config["datasets"][dataset].get(kind) if kind else None
    where = f"datasets.{dataset}.{kind}"
    if kind == "image_folder":
        try:
            return folder_classes(spec, where)
        except FolderError as err:
            raise ConfigError(str(err)) from None
    if kind == "hf":
        return _hf_local_classes(spec, where)
    return None


def _hf_local_classes(spec: dict, where: str) -> list[str] | None:
    root = Path(spec["path"])
    if not root.is_dir():
        return None  # a hub id: its files decide
    split = spec.get("train_split", "train")
    info = root / split / "dataset_info.json"
    if not info.is_file():
        raise ConfigError(
            f"{where}.path: {root} is not a save_to_disk directory with a '{split}' split "
            f"(no {info})"
        )
    feature = (
        json.loads(info.read_text()).get("features", {}).get(spec.get("label_column", "label"))
    )
    if isinstance(feature, dict) and feature.get("_type") == "ClassLabel":
        return list(feature["names"])
    return None


def resolve_own_sources(config: dict) -> None:
    """Check every dataset of a source kind and give it its one source, the kind's name (not a
    schema value: filled in here, after validation, so the rules treat it as a single-source
    dataset). Such a dataset joins no registry source."""
    for name, spec in config["datasets"].items():
        kind = source_kind(config, name)
        if kind is None:
            continue
        sources = spec.get("sources", [])
        if sources not in ([], [kind]):
            raise ConfigError(
                f"datasets.{name}: a dataset with '{kind}' reads that source alone; "
                f"drop sources {sources}"
            )
        own_classes(config, name)
        spec["sources"] = [kind]


def own_datasets(config: dict) -> list[str]:
    """The datasets of a source kind (image_folder, hf), which extraction reads in place."""
    return [d for d in config["datasets"] if any(k in config["datasets"][d] for k in SOURCE_KINDS)]


def own_source(config: dict, dataset: str) -> dict:
    """What extraction reads for such a dataset: {kind: spec, "name": dataset}."""
    kind = source_kind(config, dataset)
    return {kind: config["datasets"][dataset][kind], "name": dataset}
