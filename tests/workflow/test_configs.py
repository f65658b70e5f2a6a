"""Every workflow config under .test/ passes the schema and the planning checks, and its header
says how to run it by hand."""

import pytest
from _snakemake import CONFIGS, REPO, config_path, load_config
from snakemake.utils import validate

from imprint.planning.checks import check_config

NAMES = sorted(p.parent.name for p in CONFIGS.glob("*/config.yaml"))


def test_the_test_configs_are_there():
    assert {"small", "tiny", "joined", "own_embeddings"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_config_is_valid_and_says_how_to_run_it(name):
    assert f"--configfile .test/{name}/config.yaml" in config_path(name).read_text()
    config = load_config(name)
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    check_config(config)
