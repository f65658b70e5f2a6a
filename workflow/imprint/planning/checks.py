"""Cross-checks of a workflow config beyond its schema: every name defined, grids valid.

A typo or an inconsistency fails at planning (`snakemake -n`) with the key's name, not in a
job after hours of extraction.
"""

from __future__ import annotations

import string
from pathlib import Path

from imprint.engine.grid import GridError, expand_grid, load_grid
from imprint.planning.backbone_checks import (
    check_layers,
    check_model_backbone,
    check_own_ls_lambda,
)
from imprint.planning.batches import SEP
from imprint.planning.dataset_checks import resolve_own_sources
from imprint.planning.errors import ConfigError
from imprint.planning.figure_kinds import check_figure_kinds
from imprint.planning.jobs import collapse_groups, experiment_groups, uses_ls
from imprint.planning.mappings import (
    dataset_classes,
    expand_mappings,
    resolve_classes,
    section_mappings,
)
from imprint.planning.paths import RESULTS_DIR, SOURCES_DIR
from imprint.planning.text_checks import check_text_proxies


def _check_incremental(config: dict, name: str, exp: dict, configs) -> None:
    """An incremental experiment's protocol settings pass engine.incremental's rules (those
    `imprint incremental` applies to its flags), its sessions hold each task's classes and
    only classes its datasets have, and its grid holds only what is incremental: each refusal
    names the key (experiments.<name>.incremental.<key>) and what is allowed."""
    from imprint.engine.incremental import (
        ProtocolError,
        check_incremental_grid,
        check_protocol,
        task_sessions,
    )

    spec = exp["incremental"]
    where = f"experiments.{name}.incremental"
    try:
        check_protocol(spec)
        if spec.get("protocol") is not None or spec.get("sessions") is not None:
            sessions = task_sessions(spec)  # listed or packaged: every task gets the same
            for dataset in exp["datasets"]:
                _check_sessions_in_dataset(config, name, spec, sessions, dataset)
        for task in exp["tasks"]:
            task_sessions(spec, config["tasks"][task], what=f"task {task}")
    except ProtocolError as err:
        raise ConfigError(
            f"{where}.{err.key}: {err.text}" if err.key else f"{where}: {err.text}"
        ) from None
    try:
        check_incremental_grid(configs)
    except ValueError as err:
        raise ConfigError(f"experiments.{name}.grid: {err}") from None


def _check_sessions_in_dataset(config: dict, name: str, spec: dict, sessions, dataset: str) -> None:
    """Every class the sessions name is one of the dataset's (under each of the experiment's
    mappings), where planning knows them: registry sources have known classes (ImageNet
    without `classes` excepted: its tree decides), while a backbone that brings its own
    embedding files labels its rows as those files do, unknown until its job reads them. Only
    the listed or packaged sessions are checked here; base/way split a task's classes."""
    from imprint.engine.incremental import check_sessions_within

    exp = config["experiments"][name]
    known = dataset_classes(config, dataset)
    backbones = config["backbones"]

    def brings_own(backbone: str) -> bool:
        parts = backbones[backbone].get("concat") or [backbone]
        return any(backbones.get(part, {}).get("embeddings") for part in parts)

    if known is None or all(brings_own(b) for b in exp["backbones"]):
        return
    mappings = expand_mappings(config["mappings"])
    for mapping in section_mappings(config, exp, dataset, f"experiments.{name}"):
        labels = mappings[mapping]
        classes = sorted({labels[c] for c in known if c in labels}) if labels else known
        what = f"dataset {dataset}" + (f" under mapping {mapping}" if labels else "")
        check_sessions_within(spec, sessions, classes, what)


def _check_experiment_names(config: dict) -> None:
    """table1.experiments and model_choice.experiments must name defined experiments."""
    named = [
        (f"{section}.experiments", name)
        for section in ("table1", "model_choice")
        for name in config.get(section, {}).get("experiments", [])
    ]
    for where, name in named:
        if name not in config["experiments"]:
            raise ConfigError(
                f"{where}: '{name}' is not defined under experiments: "
                f"(defined: {', '.join(config['experiments'])})"
            )


def check_config(config: dict) -> None:
    """Every name an experiment, the collapse section or table1 uses must be defined."""
    resolve_own_sources(config)  # first: gives image_folder/hf datasets their one source
    sections = [(f"experiments.{name}", exp) for name, exp in config["experiments"].items()]
    sections.append(("collapse", config.get("collapse", {})))
    _check_sections(config, sections)
    _check_joined_names(config)
    _check_experiment_names(config)
    for name, exp in config["experiments"].items():
        _check_grid(config, name, exp)
        if "nc1_vs_gain" in exp.get("figures", []):
            _check_collapse_covers(config, name)
    _check_datasets(config)
    check_figure_kinds(config)
    _check_registered_backbones(config)
    _check_imported(config, sections)
    check_text_proxies(config)


def _check_sections(config: dict, sections: list[tuple[str, dict]]) -> None:
    """Each section's datasets, backbones and tasks are defined, and its mappings name its own
    datasets and defined mappings. `sections`: (where, section), as check_config lists them."""
    defined = {
        "datasets": set(config["datasets"]),
        "backbones": set(config["backbones"]),
        "tasks": set(config["tasks"]),
    }
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


def _check_joined_names(config: dict) -> None:
    """Mapping and task names hold neither SEP (it joins them in a job's name) nor '/'."""
    mapping_names = expand_mappings(config["mappings"])  # no two entries give the same name
    for key, names in (("mappings", mapping_names), ("tasks", config["tasks"])):
        for name in names:
            if SEP in name or "/" in name:
                raise ConfigError(
                    f"{key}.{name}: a mapping or task name may not contain '{SEP}' (it joins "
                    "the names of an imprinting job that evaluates several) nor '/'"
                )


def _check_grid(config: dict, name: str, exp: dict) -> None:
    """Experiment `name`'s grid expands (and, incremental, passes _check_incremental)."""
    # Expanding each grid here makes a typo in a grid key or value fail at planning, not
    # in its imprint jobs after hours of extraction. The packaged paper grids are expanded
    # by the test suite; only their names need checking (and planning stays fast).
    where, grid = f"experiments.{name}.grid", exp["grid"]
    try:
        packaged = isinstance(grid, str) and grid.startswith("paper:")
        if isinstance(grid, str):
            where += f" ({grid})"
            grid = load_grid(grid)[1]
        if not packaged or exp.get("incremental"):  # a paper grid takes ~0.2 s at most
            configs = expand_grid(grid, where=where, with_seeds=False)
            if exp.get("incremental"):
                _check_incremental(config, name, exp, configs)
    except GridError as err:
        message = str(err)
        raise ConfigError(message if message.startswith(where) else f"{where}: {message}") from None


def _check_collapse_covers(config: dict, name: str) -> None:
    """Experiment `name`'s figure nc1_vs_gain has collapse metrics to read: the collapse
    section covers some of its (dataset, backbone, mapping)."""
    pairs = set(collapse_groups(config))
    if not any(
        (g.dataset, g.backbone, g.mapping) in pairs for g in experiment_groups(config, name)
    ):
        raise ConfigError(
            f"experiments.{name}.figures: nc1_vs_gain needs the collapse section to cover "
            "some of this experiment's (dataset, backbone, mapping)"
        )


def _check_datasets(config: dict) -> None:
    """A dataset's name is one folder name, not that of the sources' folder; its `classes`
    are valid and given to single-source datasets only."""
    for name, ds in config["datasets"].items():
        if "/" in name or name == SOURCES_DIR:
            raise ConfigError(
                f"datasets.{name}: a dataset name may not contain '/' nor be '{SOURCES_DIR}'"
            )
        if len(ds.get("sources", [])) > 1 and ds.get("classes"):
            raise ConfigError(f"datasets.{name}: 'classes' applies to single-source datasets only")
        resolve_classes(ds.get("classes"), f"datasets.{name}.classes")


def _check_registered_backbones(config: dict) -> None:
    """A backbone extracted here must be in the registry: refused at planning, not by a
    traceback inside its extraction job."""
    from imprint.data.ls_lambda import LS_LAMBDA  # torch-free; the registry's names

    for name, spec in config["backbones"].items():
        check_layers(config, name)  # before the kinds: layers: refuses embeddings: and concat:
        if spec.get("model"):
            check_model_backbone(config, name)
        elif spec.get("concat"):
            _check_concat(config, name, spec["concat"])
        elif not spec.get("embeddings") and name not in LS_LAMBDA:
            raise ConfigError(
                f"backbones.{name}: not a registered backbone (registered: "
                f"{', '.join(sorted(LS_LAMBDA))}); register it in imprint/data/backbones.py, or "
                "bring its embeddings with backbones.<name>.embeddings: <path pattern>"
            )


def _check_concat(config: dict, name: str, parts: list) -> None:
    """A concatenated backbone's parts are other, non-concatenated backbones of the config,
    each once; with GEN ls or kls it needs its own λ (no registered value fits a new width)."""
    backbones = config["backbones"]
    for part in parts:
        if part not in backbones:
            raise ConfigError(
                f"backbones.{name}.concat: '{part}' is not defined under backbones: (defined: "
                f"{', '.join(b for b in backbones if b != name)})"
            )
        if part == name or backbones[part].get("concat"):
            raise ConfigError(
                f"backbones.{name}.concat: '{part}' is itself a concatenation; list its parts "
                "instead"
            )
    if len(set(parts)) < len(parts):
        raise ConfigError(f"backbones.{name}.concat: a part is listed twice in {parts}")
    if backbones[name].get("embeddings"):
        raise ConfigError(
            f"backbones.{name}: 'concat' and 'embeddings' exclude each other (a backbone is made "
            "of others or brings its own files)"
        )
    if backbones[name].get("ls_lambda") is None:
        for experiment, exp in config["experiments"].items():
            if name in exp["backbones"] and uses_ls(config, experiment):
                raise ConfigError(
                    f"backbones.{name}: experiments.{experiment} uses GEN ls or kls, which need "
                    f"this concatenated backbone's ridge λ: set backbones.{name}.ls_lambda"
                )


def validate_config(config: dict, schema_path: str | Path) -> None:
    """Check `config` against the JSON schema, with one line per error: the key's path and
    what is allowed (an unknown key lists the allowed keys, not the whole schema)."""
    import jsonschema

    from imprint.io import read_yaml

    schema = read_yaml(schema_path)
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is None:
        return
    where = ".".join(str(p) for p in error.absolute_path) or "the config's top level"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed: {', '.join(allowed)}")
    if error.validator == "anyOf" and "description" in error.schema:  # e.g. shots: -1 or >= 1
        raise ConfigError(
            f"{where}: {error.instance!r} is not allowed ({error.schema['description']})"
        )
    raise ConfigError(f"{where}: {error.message}")


# The workflow's config schema (beside the library in this checkout).
CONFIG_SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml"


def check_config_file(path: str | Path) -> dict:
    """Every check `snakemake -n` makes of a config file, without Snakemake's planning: YAML
    (line and column), the schema (defaults filled in) and the names (check_config). For a file
    given with --configfile, whose YAML errors Snakemake reports without a line."""
    from snakemake.utils import validate

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such config file")
    config = _read_config_yaml(path)
    if not isinstance(config, dict):
        raise ConfigError(
            f"{path}: a config is a YAML mapping of sections, got {type(config).__name__}"
        )
    try:
        validate_config(config, CONFIG_SCHEMA)
        validate(config, str(CONFIG_SCHEMA))  # fills in the defaults check_config reads
        check_config(config)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    return config


def check_yaml_file(*paths: str | Path) -> None:
    """Config files Snakemake would reject as 'not valid JSON or YAML', or read keeping the
    last of a key given twice, refused with the line and column (the Snakefile calls this on
    config.yaml or on every --configfile before Snakemake's own reading counts)."""
    for path in paths:
        if Path(path).exists():  # else Snakemake says so itself
            _read_config_yaml(path)


def _read_config_yaml(path: str | Path):
    """A config file's YAML, strictly (imprint.io.read_yaml); errors as ConfigError."""
    from imprint.io import read_yaml

    try:
        return read_yaml(path)
    except ValueError as err:
        raise ConfigError(str(err)) from None


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
        _check_outside_results(name, pattern)
        if "dataset" not in fields and len(used.get(name, ())) > 1:
            raise ConfigError(
                f"backbones.{name}.embeddings: {pattern!r} has no {{dataset}} placeholder but the "
                f"backbone is used on {len(used[name])} datasets ({', '.join(sorted(used[name]))})"
            )
        check_own_ls_lambda(config, name)


def _check_outside_results(name: str, pattern: str) -> None:
    """A user's own embedding files must lie outside the workflow's results/ folder: Snakemake
    owns what is there (it removes a rule's outputs before rerunning it), and the import rule
    writes its copy under results/embeddings/, where the user's files would be both its input
    and its output."""
    import os

    results = Path(RESULTS_DIR).resolve()
    fixed = pattern.split("{", 1)[0]  # the part before the first placeholder
    where = Path(os.path.expanduser(fixed or ".")).resolve()
    if where == results or results in where.parents:
        raise ConfigError(
            f"backbones.{name}.embeddings: {pattern!r} lies inside the workflow's {RESULTS_DIR}/ "
            "folder, whose files Snakemake removes and rewrites (the import copies yours to "
            f"{RESULTS_DIR}/embeddings/…): keep your own embedding files outside {RESULTS_DIR}/"
        )
