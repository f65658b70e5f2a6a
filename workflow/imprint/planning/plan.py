"""Planning the workflow from its config: named mappings, cross-checks and the job list."""

from __future__ import annotations

import itertools
import string
from dataclasses import dataclass

SOURCES_DIR = "sources"  # results/embeddings/sources/<source>: the parts of a joined dataset


class ConfigError(ValueError):
    """The workflow config names something it does not define."""


def expand_mappings(mappings: dict) -> dict[str, dict[int, int]]:
    """Named mappings with generated families expanded (imagenet100 → map{i}-{j})."""
    out: dict[str, dict[int, int]] = {}
    owner: dict[str, str] = {}  # expanded name -> the mappings entry it came from
    for name, value in mappings.items():
        if value == "combidigits":
            from imprint.data.selections import combidigits_mapping

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
    from imprint.data.selections import imagenet_class_selections

    return imagenet_class_selections()["remappings"]


def _imagenet50_tasks() -> dict[str, dict[int, int]]:
    """The reference's five random 10-class ImageNet tasks as mappings: class id -> 0..9."""
    from imprint.data.selections import imagenet_class_selections

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
    from imprint.data.selections import imagenet_class_selections

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


def check_config(config: dict) -> None:
    """Every name an experiment, the collapse section or table1 uses must be defined."""
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
        mappings = section.get("mappings", [])
        if isinstance(mappings, dict):
            for dataset in mappings:
                if dataset not in section.get("datasets", []):
                    raise ConfigError(
                        f"{where}.mappings: '{dataset}' is not one of this section's datasets "
                        f"({', '.join(section.get('datasets', []))})"
                    )
        for dataset in section.get("datasets", []):
            section_mappings(config, section, dataset, where)
    expand_mappings(config["mappings"])  # two entries may not give the same mapping name
    for name in config.get("table1", {}).get("experiments", []):
        if name not in config["experiments"]:
            raise ConfigError(
                f"table1.experiments: '{name}' is not defined under experiments: "
                f"(defined: {', '.join(config['experiments'])})"
            )
    from imprint.engine.grid import GridError, expand_grid, load_grid

    for name, exp in config["experiments"].items():
        # Expanding each grid here makes a typo in a grid key or value fail at planning, not
        # in its imprint jobs after hours of extraction. The packaged paper grids are expanded
        # by the test suite; only their names need checking (and planning stays fast).
        where, grid = f"experiments.{name}.grid", exp["grid"]
        try:
            packaged = isinstance(grid, str) and grid.startswith("paper:")
            if isinstance(grid, str):
                where += f" ({grid})"
                grid = load_grid(grid)[1]
            if not packaged:
                expand_grid(grid, where=where, with_seeds=False)
        except GridError as err:
            message = str(err)
            raise ConfigError(
                message if message.startswith(where) else f"{where}: {message}"
            ) from None
        if "nc1_vs_gain" in exp.get("figures", []):
            pairs = set(collapse_groups(config))
            if not any(
                (g.dataset, g.backbone, g.mapping) in pairs for g in experiment_groups(config, name)
            ):
                raise ConfigError(
                    f"experiments.{name}.figures: nc1_vs_gain needs the collapse section to cover "
                    "some of this experiment's (dataset, backbone, mapping)"
                )
    for name, ds in config["datasets"].items():
        if "/" in name or name == SOURCES_DIR:
            raise ConfigError(
                f"datasets.{name}: a dataset name may not contain '/' nor be '{SOURCES_DIR}'"
            )
        if len(ds.get("sources", [])) > 1 and ds.get("classes"):
            raise ConfigError(f"datasets.{name}: 'classes' applies to single-source datasets only")
        resolve_classes(ds.get("classes"), f"datasets.{name}.classes")
    _check_imported(config, sections)


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


def source_embeddings(config: dict, dataset: str) -> list[str]:
    """Where each source of a joined dataset is embedded, relative to results/embeddings.

    A source that is also a single-source dataset of its own with every class (MNIST beside
    CombiDigits) reuses that dataset's embeddings instead of being extracted twice.
    """
    reuse = {
        spec["sources"][0]: name
        for name, spec in config["datasets"].items()
        if len(spec.get("sources", [])) == 1 and spec.get("classes") is None
    }
    return [reuse.get(s, f"{SOURCES_DIR}/{s}") for s in config["datasets"][dataset]["sources"]]


def ls_precision(config: dict, experiment: str) -> str | None:
    """engine.ls_precision where the experiment's grid has GEN ls or kls, else None.

    A rule parameter that only grids with ls/kls carry: changing the precision reruns those
    jobs and no others.
    """
    precision = config.get("engine", {}).get("ls_precision", "float64")
    return precision if uses_ls(config, experiment) else None


def uses_ls(config: dict, experiment: str) -> bool:
    """Whether an experiment's grid names GEN ls or kls (which need the backbone's ridge λ)."""
    from imprint.engine.grid import GRID_DEFAULTS, load_grid

    grid = config["experiments"][experiment]["grid"]
    if isinstance(grid, str):
        grid = load_grid(grid)[1]  # readable: check_config expanded it
    parts = grid.get("parts", [grid]) if isinstance(grid, dict) else grid
    gens = {
        g for part in parts if isinstance(part, dict) for g in part.get("gen", GRID_DEFAULTS["gen"])
    }
    return bool(gens & {"ls", "kls"})


def imported_embeddings(config: dict, dataset: str, backbone: str, split: str) -> str | None:
    """The user's embedding file of a backbone that brings its own (`embeddings:`), else None."""
    pattern = config["backbones"][backbone].get("embeddings")
    return pattern.format(dataset=dataset, split=split) if pattern else None


def ls_parameter(precision: str | None, backbone: dict) -> str | dict | None:
    """The imprint rule's `ls_precision` parameter for one backbone.

    `precision` as `ls_precision` gives it (None: no ls/kls in the grid), with the backbone's
    configured `ls_lambda` folded in where there is one: {"precision": ..., "ls_lambda": ...}.
    One parameter rather than two, so that a job without a configured λ keeps the value it had
    before λ could be configured, and Snakemake does not rerun it.
    """
    lam = backbone.get("ls_lambda")
    if precision is None or lam is None:
        return precision
    return {"precision": precision, "ls_lambda": float(lam)}


def _check_imported(config: dict, sections: list[tuple[str, dict]]) -> None:
    """Backbones with `embeddings:` and datasets without sources are used consistently.

    `sections`: (where, section) of every experiment and the collapse section, as check_config
    lists them.
    """
    used: dict[str, set[str]] = {}  # backbone -> datasets it is paired with
    for where, section in sections:
        for backbone in section.get("backbones", []):
            used.setdefault(backbone, set()).update(section.get("datasets", []))
            imported = bool(config["backbones"][backbone].get("embeddings"))
            for dataset in section.get("datasets", []):
                if not imported and not config["datasets"][dataset].get("sources"):
                    raise ConfigError(
                        f"{where}: dataset '{dataset}' has no sources, so only backbones that "
                        f"bring their own embeddings can read it; backbones.{backbone} has no "
                        "'embeddings:' path"
                    )
    for name, spec in config["backbones"].items():
        pattern = spec.get("embeddings")
        if not pattern:
            continue
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None}
        except ValueError as err:  # an unmatched brace
            raise ConfigError(f"backbones.{name}.embeddings: {pattern!r}: {err}") from None
        if fields - {"dataset", "split"}:
            raise ConfigError(
                f"backbones.{name}.embeddings: unknown placeholder(s) "
                f"{sorted(fields - {'dataset', 'split'})} in {pattern!r}; allowed: {{dataset}}, {{split}}"
            )
        if "split" not in fields:
            raise ConfigError(
                f"backbones.{name}.embeddings: {pattern!r} needs a {{split}} placeholder "
                "(train and test are separate files)"
            )
        if "dataset" not in fields and len(used.get(name, ())) > 1:
            raise ConfigError(
                f"backbones.{name}.embeddings: {pattern!r} has no {{dataset}} placeholder but the "
                f"backbone is used on {len(used[name])} datasets ({', '.join(sorted(used[name]))})"
            )
        if spec.get("ls_lambda") is None:
            for experiment, exp in config["experiments"].items():
                if name in exp["backbones"] and uses_ls(config, experiment):
                    raise ConfigError(
                        f"backbones.{name}: experiments.{experiment} uses GEN ls or kls, which need "
                        f"this backbone's ridge λ: set backbones.{name}.ls_lambda (the paper uses "
                        "the weight decay the model was trained with)"
                    )
