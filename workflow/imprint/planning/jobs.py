"""The workflow's jobs from its config: imprinting groups, collapse triples, per-job settings."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from imprint.engine.grid import GRID_DEFAULTS, load_grid
from imprint.engine.vocabulary import DEFAULT_LS_PRECISION, JOINT_GEN, TEXT_GEN
from imprint.planning import paths
from imprint.planning.mappings import section_mappings


@dataclass(frozen=True)
class Group:
    """One imprinting job: an experiment's grid on one (dataset, backbone, mapping, task)."""

    experiment: str
    dataset: str
    backbone: str
    mapping: str
    task: str

    def path(self) -> str:
        return paths.GROUP_TABLE.format(**vars(self))


def experiment_groups(config: dict, experiment: str) -> list[Group]:
    """Every (dataset, backbone, mapping, task) job of an experiment, in config order."""
    exp = config["experiments"][experiment]
    where = f"experiments.{experiment}"
    return [
        Group(experiment, d, b, m, t)
        for d in exp["datasets"]
        for b, m, t in itertools.product(
            exp["backbones"], section_mappings(config, exp, d, where), exp["tasks"]
        )
    ]


def collapse_groups(config: dict) -> list[tuple[str, str, str]]:
    """(dataset, backbone, mapping) triples the collapse section measures."""
    section = config.get("collapse", {})
    return [
        (d, b, m)
        for d in section.get("datasets", [])
        for b in section.get("backbones", [])
        for m in section_mappings(config, section, d, "collapse")
    ]


def model_choice_groups(config: dict) -> list[Group]:
    """The groups whose transferability is estimated: every group of the first experiment of
    model_choice.experiments (none without that section)."""
    names = config.get("model_choice", {}).get("experiments")
    return experiment_groups(config, names[0]) if names else []


def _compared_sets(config: dict, switch: bool) -> dict[str, list[str]]:
    """{dataset: backbones} of model_choice's first experiment, where it has two or more
    backbones and `switch` (the comparison's setting) is on."""
    section = config.get("model_choice", {})
    if not section.get("experiments") or not switch:
        return {}
    exp = config["experiments"][section["experiments"][0]]
    return {d: list(exp["backbones"]) for d in exp["datasets"]} if len(exp["backbones"]) > 1 else {}


def similarity_sets(config: dict) -> dict[str, list[str]]:
    """{dataset: backbones} whose test embeddings model_choice compares pairwise (CKA): the
    experiment's datasets with two or more backbones, when model_choice.similarity is on."""
    return _compared_sets(config, config.get("model_choice", {}).get("similarity", True))


def stitching_sets(config: dict) -> dict[str, list[str]]:
    """{dataset: backbones} model_choice stitches, every ordered pair (the same sets as CKA's),
    when model_choice.stitching.enabled is on."""
    section = config.get("model_choice", {}).get("stitching", {})
    return _compared_sets(config, section.get("enabled", True))


def source_embeddings(config: dict, dataset: str) -> list[str]:
    """The embedding directories of a joined dataset's sources, per split placeholder.

    A source that is also a single-source dataset of its own with every class (MNIST beside
    CombiDigits) reuses that dataset's embeddings instead of being extracted twice.
    """
    reuse = {
        spec["sources"][0]: name
        for name, spec in config["datasets"].items()
        if len(spec.get("sources", [])) == 1 and spec.get("classes") is None
    }
    return [
        paths.EMBEDDINGS.format(dataset=reuse[s], backbone="{backbone}", split="{split}")
        if s in reuse
        else paths.SOURCE_EMBEDDINGS.format(source=s, backbone="{backbone}", split="{split}")
        for s in config["datasets"][dataset]["sources"]
    ]


def grid_gens(config: dict, experiment: str) -> set[str]:
    """The GENs an experiment's grid names."""
    grid = config["experiments"][experiment]["grid"]
    if isinstance(grid, str):
        grid = load_grid(grid)[1]  # readable: check_config expanded it
    parts = grid.get("parts", [grid]) if isinstance(grid, dict) else grid
    return {
        g for part in parts if isinstance(part, dict) for g in part.get("gen", GRID_DEFAULTS["gen"])
    }


def uses_ls(config: dict, experiment: str) -> bool:
    """Whether an experiment's grid names GEN ls or kls (which need the backbone's ridge λ)."""
    return bool(grid_gens(config, experiment) & set(JOINT_GEN))


def uses_text(config: dict, experiment: str) -> bool:
    """Whether an experiment's grid names GEN text or text_mean (which read text proxies)."""
    return bool(grid_gens(config, experiment) & set(TEXT_GEN))


def ls_precision(config: dict) -> str:
    """engine.ls_precision: the arithmetic of GEN ls/kls."""
    return config.get("engine", {}).get("ls_precision", DEFAULT_LS_PRECISION)


def ls_lambda(config: dict, backbone: str) -> float:
    """The backbone's ridge λ for GEN ls/kls: `backbones.<name>.ls_lambda`, else the registered
    one (never for a `model:` backbone, even one named like a registered entry: planning has
    asked for its own, see planning/backbone_checks.py)."""
    from imprint.data.ls_lambda import resolve_ls_lambda

    spec = config["backbones"][backbone]
    return resolve_ls_lambda(spec.get("ls_lambda"), None if spec.get("model") else backbone)


def imported_embeddings(config: dict, dataset: str, backbone: str, split: str) -> str | None:
    """The user's embedding file of a backbone that brings its own (`embeddings:`), else None."""
    pattern = config["backbones"][backbone].get("embeddings")
    return pattern.format(dataset=dataset, split=split) if pattern else None
