"""Every workflow config under .test/ passes the schema and the planning checks, and its header
says how to run it by hand."""

import copy

import pytest
from _snakemake import CONFIGS, REPO, config_path, load_config, snakemake
from snakemake.utils import validate

from imprint.planning.checks import check_config, check_yaml_file, validate_config
from imprint.planning.errors import ConfigError

NAMES = sorted(p.parent.name for p in CONFIGS.glob("*/config.yaml"))


def test_the_test_configs_are_there():
    assert {"small", "tiny", "joined", "own_embeddings"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_config_is_valid_and_says_how_to_run_it(name):
    assert f"--configfile .test/{name}/config.yaml" in config_path(name).read_text()
    config = load_config(name)
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
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
