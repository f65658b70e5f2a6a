"""Named label mappings and class selections of a config: families expanded, names resolved."""

from __future__ import annotations

from imprint.data.selections import (
    LABEL_OFFSET,
    SOURCE_CLASSES,
    combidigits_mapping,
    imagenet_class_selections,
)
from imprint.planning.dataset_checks import own_classes, source_kind
from imprint.planning.errors import ConfigError


def expand_mappings(mappings: dict) -> dict[str, dict[int, int]]:
    """Named mappings with generated families expanded (imagenet100 → map{i}-{j})."""
    out: dict[str, dict[int, int]] = {}
    owner: dict[str, str] = {}  # expanded name -> the mappings entry it came from
    for name, value in mappings.items():
        if value == "combidigits":
            family = {name: {int(k): int(v) for k, v in combidigits_mapping().items()}}
        elif isinstance(value, str) and value in FAMILIES:
            family = FAMILIES[value]()
        elif isinstance(value, dict):
            family = {name: {int(k): int(v) for k, v in value.items()}}
        else:
            raise ConfigError(
                f"mappings.{name}: expected a mapping or one of combidigits, "
                f"{', '.join(FAMILIES)}, got {value!r}"
            )
        for member, mapping in family.items():
            if member in out:
                raise ConfigError(
                    f"mappings.{name}: the name '{member}' is also given by mappings."
                    f"{owner[member]} (imagenet100 names its members map{{i}}-{{j}}, "
                    "imagenet50 imagenet50-{t})"
                )
            out[member], owner[member] = mapping, name
    return out


def _imagenet100_remappings() -> dict[str, dict[int, int]]:
    return imagenet_class_selections()["remappings"]


def _imagenet50_tasks() -> dict[str, dict[int, int]]:
    """The reference's five random 10-class ImageNet tasks as mappings: class id -> 0..9."""
    tasks = imagenet_class_selections()["tasks50"]
    return {f"imagenet50-{t}": {c: i for i, c in enumerate(task)} for t, task in enumerate(tasks)}


# Generated mapping families: a `mappings` entry with one of these values stands for all the
# members, each its own mapping name.
FAMILIES = {"imagenet100": _imagenet100_remappings, "imagenet50": _imagenet50_tasks}


def mapping_names(config: dict, names: list[str]) -> list[str]:
    """Mapping names of an experiment: a generated family's entry stands for all its members,
    and a single member (map10-3, imagenet50-0) may be named on its own."""
    out: dict[str, str] = {}  # mapping name -> the listed name that gave it

    def add(member: str, listed: str) -> None:
        if member in out:  # the same jobs twice would count their groups twice
            first, again = (
                f"'{name}'" if name == member else f"part of '{name}'"
                for name in (out[member], listed)
            )
            raise ConfigError(f"mapping '{member}' is listed twice: as {first} and as {again}")
        out[member] = listed

    for name in names:
        value = config["mappings"].get(name)
        if value is None:
            if name in expand_mappings(config["mappings"]):
                add(name, name)  # one member of a generated family
                continue
            raise ConfigError(
                f"mapping '{name}' is not defined under mappings: (defined: "
                f"{', '.join(config['mappings'])}, or a member of an imagenet100/imagenet50 entry "
                "such as map10-0 or imagenet50-0)"
            )
        if isinstance(value, str) and value in FAMILIES:
            for member in FAMILIES[value]():
                add(member, name)
        else:
            add(name, name)
    return list(out)


def section_mappings(config: dict, section: dict, dataset: str, where: str = "") -> list[str]:
    """The mapping names a section (an experiment or collapse) uses on one dataset.

    `mappings` is either a list for every dataset of the section, or a map dataset -> list
    (CombiDigits needs its own mapping, ImageNet its remappings, the digit sets none).
    """
    mappings = section.get("mappings", [])
    if isinstance(mappings, dict):
        if dataset not in mappings:
            raise ConfigError(
                f"{where}.mappings: no entry for dataset '{dataset}' "
                f"(entries: {', '.join(mappings) or 'none'})"
            )
        mappings = mappings[dataset]
    return mapping_names(config, mappings)


def resolve_classes(value, where: str = "classes") -> list[int] | None:
    """A dataset's `classes`: null (all), a list of class ids, or a named paper selection."""
    if value is None or isinstance(value, list):
        return value
    sel = imagenet_class_selections()
    named = {
        "imagenet50": [c for task in sel["tasks50"] for c in task],
        "imagenet100": list(sel["classes100"]),
    }
    named["imagenet_paper"] = sorted(set(named["imagenet50"]) | set(named["imagenet100"]))
    if value not in named:
        raise ConfigError(
            f"{where}: unknown class selection {value!r} (allowed: a list of ids, {', '.join(named)})"
        )
    return named[value]


def dataset_classes(config: dict, dataset: str) -> list[int] | None:
    """The class ids (before any mapping) of the embeddings extracted here for a dataset, or
    None where planning cannot know them: a dataset without sources (only backbones that bring
    their own embedding files read it, and those files decide) or one whose source's classes
    its files decide (ImageNet without `classes`). Source j of a joined dataset is offset by
    LABEL_OFFSET·j; `classes` keeps the listed ids a single source has. An image_folder
    dataset's classes are its folders (a local hf directory's: its ClassLabel names)."""
    spec = config["datasets"][dataset]
    kind = source_kind(config, dataset)
    sources = [kind] if kind else spec.get("sources", [])
    if kind:
        names = own_classes(config, dataset)
        counts = [None if names is None else len(names)]
    else:
        counts = [SOURCE_CLASSES.get(s) for s in sources]
    if len(sources) == 1:
        listed = resolve_classes(spec.get("classes"), f"datasets.{dataset}.classes")
        if listed is not None:
            return sorted({c for c in listed if counts[0] is None or c < counts[0]})
    if not sources or None in counts:
        return None
    return sorted({c + LABEL_OFFSET * j for j, n in enumerate(counts) for c in range(n)})
