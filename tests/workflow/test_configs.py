"""Every workflow config under .test/ passes the schema and the planning checks, and its header
says how to run it by hand."""

import copy
from pathlib import Path

import pytest
from _snakemake import CONFIGS, REPO, config_path, load_config, snakemake
from snakemake.utils import validate

from imprint.planning.checks import check_config, check_yaml_file, validate_config
from imprint.planning.errors import ConfigError

NAMES = sorted(p.parent.name for p in CONFIGS.glob("*/config.yaml"))


def test_the_test_configs_are_there():
    assert {"small", "tiny", "joined", "own_embeddings", "by_name"} <= set(NAMES)


def _image_folders(config: dict, workdir: Path) -> None:
    """The class folders an image_folder dataset names, two tiny images each (planning lists
    them: its checks read the tree)."""
    from PIL import Image

    for spec in config["datasets"].values():
        for tree in (spec.get("image_folder") or {}).values():
            if isinstance(tree, str):
                for name in ("a", "b"):
                    (workdir / tree / name).mkdir(parents=True, exist_ok=True)
                    for i in range(2):
                        Image.new("RGB", (4, 4)).save(workdir / tree / name / f"{i}.png")


@pytest.mark.parametrize("name", NAMES)
def test_config_is_valid_and_says_how_to_run_it(name, tmp_path, monkeypatch):
    assert f"--configfile .test/{name}/config.yaml" in config_path(name).read_text()
    config = load_config(name)
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    _image_folders(config, tmp_path)
    monkeypatch.chdir(tmp_path)  # relative paths in the config resolve here
    check_config(config)


SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def _edited(edit):
    config = copy.deepcopy(load_config("tiny"))
    edit(config)
    return config


# Bad workflow configs: each refused in one line naming the key and what is allowed (the
# command-line cases are in tests/test_bad_inputs.py).
BAD_CONFIGS = {
    "unknown-top-level-key": (
        lambda c: c.update(extractoin={}),
        ["the config's top level", "'extractoin'", "allowed: backbones, collapse"],
    ),
    "unknown-nested-key": (
        lambda c: c["experiments"]["tiny"].update(gird="x"),
        ["experiments.tiny", "'gird'", "allowed:", "grid"],
    ),
    "wrong-type": (
        lambda c: c["extraction"].update(limit_per_class="many"),
        ["extraction.limit_per_class", "'many'"],
    ),
    "unregistered-backbone": (
        lambda c: c["backbones"].update(resnet19={}),
        ["backbones.resnet19", "not a registered backbone", "resnet18"],
    ),
    # The import would copy the user's files onto themselves: Snakemake removes a rule's
    # outputs (here the user's own arrays) before running it.
    "own-embeddings-in-results": (
        lambda c: c["backbones"].update(
            mine={"embeddings": "results/embeddings/{dataset}/mine/{split}", "ls_lambda": 1.0}
        ),
        ["backbones.mine.embeddings", "inside the workflow's results/", "outside results/"],
    ),
    "own-embeddings-in-results-absolute": (
        lambda c: c["backbones"].update(
            mine={"embeddings": str(Path("results").resolve()) + "/x/{dataset}-{split}.npz"}
        ),
        ["backbones.mine.embeddings", "inside the workflow's results/"],
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_a_bad_config_is_refused_in_one_line_naming_the_key(name):
    edit, culprits = BAD_CONFIGS[name]
    config = _edited(edit)
    with pytest.raises(ConfigError) as err:
        validate_config(config, SCHEMA)
        validate(config, str(SCHEMA))
        check_config(config)
    message = str(err.value)
    assert "\n" not in message and len(message) < 400, message
    for culprit in culprits:
        assert culprit in message, message


def test_a_yaml_error_in_config_yaml_names_line_and_column(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("datasets:\n  digits: {sources: [digits]\nbackbones: {}\n")
    with pytest.raises(ConfigError, match=r"config.yaml: not valid YAML: line 3, column 1: "):
        check_yaml_file(bad)
    # Snakemake itself says only "not valid JSON or YAML"; the Snakefile checks first.
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    assert "config.yaml: not valid YAML: line 3, column 1" in proc.stderr + proc.stdout


# Config files the user's report ("Nothing lost") showed passing `imprint check-config` and
# `snakemake -n` and then failing in a job, or not at all: each now refused by both, in one
# line naming the file's key. A case edits the text of .test/tiny/config.yaml (duplicates
# cannot be written through a dict) and returns it with the strings the refusal must name.
TINY_TEXT = config_path("tiny").read_text()
INCREMENTAL = "    incremental: {base: 2, way: 1, shots: 5}\n"


def _line_of(text: str, line: str, nth: int = 2) -> int:
    """The line number of the nth occurrence of `line` in `text`."""
    return [i for i, s in enumerate(text.splitlines(), 1) if s == line][nth - 1]


def _duplicated_backbone():
    text = TINY_TEXT.replace("    image_size: 16\n", "    image_size: 16\n  pixels: {}\n", 1)
    return text, [f"line {_line_of(text, '  pixels: {}')}", "duplicate key 'pixels'"]


def _duplicated_base():
    block = "    incremental:\n      base: 2\n      way: 1\n      shots: 5\n      base: 3\n"
    text = TINY_TEXT.replace(INCREMENTAL, block)
    return text, [f"line {_line_of(text, '      base: 3', 1)}", "duplicate key 'base'"]


def _incremental(spec: dict, **experiment):
    """The tiny config with experiments.sessions.incremental replaced (and other keys set)."""

    def make():
        import yaml

        config = load_config("tiny")
        config["experiments"]["sessions"].update(incremental=spec, **experiment)
        config["tasks"]["hundred"] = list(range(100))
        return yaml.safe_dump(config, sort_keys=False), []

    return make


KEY = "experiments.sessions.incremental"
BAD_CONFIG_FILES = {
    "duplicated-backbone": _duplicated_backbone,
    "duplicated-base": _duplicated_base,
    "sessions-and-base-way": (
        _incremental({"sessions": [[0, 1], [2]], "base": 2, "way": 1}),
        [f"{KEY}.sessions: excludes base, way", "give only one of protocol, sessions"],
    ),
    "negative-shots": (
        _incremental({"base": 2, "way": 1, "shots": -3}),
        [f"{KEY}.shots: -3 is not allowed", "-1 (all) or >= 1"],
    ),
    "session-class-absent-from-task": (
        _incremental({"sessions": [[0, 1], [2], [7]]}, tasks=["short"]),
        [f"{KEY}.sessions: the sessions name class(es) [7] not in task short"],
    ),
    "cifar100-protocol-on-digits": (
        _incremental({"protocol": "fscil_cifar100"}, tasks=["hundred"]),
        [f"{KEY}.protocol: fscil_cifar100's sessions name class(es) [10..99]", "dataset digits"],
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIG_FILES))
def test_a_bad_config_file_is_refused_by_check_config_and_snakemake_naming_the_key(
    name, tmp_path, capsys
):
    from imprint.cli.main import main

    case = BAD_CONFIG_FILES[name]
    make, named = case if isinstance(case, tuple) else (case, [])
    text, located = make()
    path = tmp_path / "c.yaml"
    path.write_text(text)
    culprits = [*named, *located]
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err, err
    for culprit in culprits:
        assert culprit in err, err
    proc = snakemake(tmp_path, "-n", "--configfile", str(path), check=False)
    assert proc.returncode != 0
    for culprit in culprits:
        assert culprit in proc.stderr + proc.stdout, proc.stderr[-3000:]


def test_sessions_are_checked_against_a_dataset_only_where_planning_knows_its_classes():
    def far(c):
        c["tasks"]["far"] = [0, 1, 12]
        c["experiments"]["sessions"].update(incremental={"sessions": [[0, 1], [12]]}, tasks=["far"])

    def checked(config):
        validate_config(config, SCHEMA)
        validate(config, str(SCHEMA))
        check_config(config)

    with pytest.raises(ConfigError, match=r"class\(es\) \[12\] not in dataset digits"):
        checked(_edited(far))

    def own(c):  # a backbone's own files label the rows: unknown until its job reads them
        far(c)
        c["backbones"]["mine"] = {"embeddings": "own/{dataset}/{split}.npz"}
        c["experiments"]["sessions"]["backbones"] = ["mine"]

    checked(_edited(own))


@pytest.mark.slow
def test_results_tables_plans_no_figure_and_a_configfile_replaces_config_yaml(tmp_path):
    """README.md's quickstart: `results_tables` makes "only results/imprint/*.parquet (no
    figures)"; and "a `--configfile` replaces `config.yaml` rather than being merged into it"."""
    from _snakemake import install_config, job_counts

    install_config("tiny", tmp_path)  # tiny's experiments, figures and model choice
    tables = job_counts(snakemake(tmp_path, "-n", "results_tables").stdout)
    assert tables["imprint_grid"] > 0 and tables["gather_results"] > 0
    drawn = {"summarise_table1", "rank_configurations", "plot_collapse", "compute_collapse"}
    assert not [rule for rule in tables if rule.startswith("plot_") or rule in drawn]

    small = ["-n", "--configfile", str(config_path("small"))]
    alone = tmp_path / "alone"
    alone.mkdir()
    with_tiny_there = job_counts(snakemake(tmp_path, *small).stdout)
    assert with_tiny_there == job_counts(snakemake(alone, *small).stdout)
    assert with_tiny_there != job_counts(snakemake(tmp_path, "-n").stdout)
