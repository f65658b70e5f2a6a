"""Planning the workflow from its config: named mappings, cross-checks and the job list."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

SOURCES_DIR = "sources"  # results/embeddings/sources/<source>: the parts of a joined dataset
LABEL_OFFSET = 10  # labels of the j-th source of a joined dataset are shifted by 10·j


class ConfigError(ValueError):
    """The workflow config names something it does not define."""


def expand_mappings(mappings: dict) -> dict[str, dict[int, int]]:
    """Named mappings with generated families expanded (imagenet100 → map{i}-{j})."""
    out: dict[str, dict[int, int]] = {}
    for name, value in mappings.items():
        if value == "combidigits":
            from imprint.datasets import combidigits_mapping

            out[name] = {int(k): int(v) for k, v in combidigits_mapping().items()}
        elif value == "imagenet100":
            from imprint.datasets import imagenet_class_selections

            out.update(imagenet_class_selections()["remappings"])
        elif isinstance(value, dict):
            out[name] = {int(k): int(v) for k, v in value.items()}
        else:
            raise ConfigError(
                f"mappings.{name}: expected a mapping or combidigits/imagenet100, got {value!r}"
            )
    return out


def mapping_names(config: dict, names: list[str]) -> list[str]:
    """Mapping names of an experiment, with a generated family's name standing for all its members."""
    out = []
    for name in names:
        if name not in config["mappings"]:
            raise ConfigError(
                f"mapping '{name}' is not defined under mappings: (defined: {', '.join(config['mappings'])})"
            )
        if config["mappings"][name] == "imagenet100":
            out.extend(expand_mappings({name: "imagenet100"}))
        else:
            out.append(name)
    return out


def check_config(config: dict) -> None:
    """Every name an experiment or the collapse section uses must be defined."""
    defined = {
        "datasets": set(config["datasets"]),
        "backbones": set(config["backbones"]),
        "tasks": set(config["tasks"]),
    }
    sections = [(f"experiments.{name}", exp) for name, exp in config["experiments"].items()]
    sections.append(("collapse", config.get("collapse", {})))
    for where, section in sections:
        for key, known in defined.items():
            for value in section.get(key, []):
                if value not in known:
                    raise ConfigError(
                        f"{where}.{key}: '{value}' is not defined under {key}: (defined: {', '.join(sorted(known))})"
                    )
        mapping_names(config, section.get("mappings", []))
    for name, ds in config["datasets"].items():
        if "/" in name or name == SOURCES_DIR:
            raise ConfigError(
                f"datasets.{name}: a dataset name may not contain '/' nor be '{SOURCES_DIR}'"
            )
        if len(ds["sources"]) > 1 and ds.get("classes"):
            raise ConfigError(f"datasets.{name}: 'classes' applies to single-source datasets only")


@dataclass(frozen=True)
class Group:
    """One imprinting job: an experiment's grid on one (dataset, backbone, mapping, task)."""

    experiment: str
    dataset: str
    backbone: str
    mapping: str
    task: str

    def path(self, root: str = "results/imprint") -> str:
        return f"{root}/{self.experiment}/{self.dataset}/{self.backbone}/{self.mapping}/{self.task}.parquet"


def experiment_groups(config: dict, experiment: str) -> list[Group]:
    exp = config["experiments"][experiment]
    return [
        Group(experiment, d, b, m, t)
        for d, b, m, t in itertools.product(
            exp["datasets"], exp["backbones"], mapping_names(config, exp["mappings"]), exp["tasks"]
        )
    ]
