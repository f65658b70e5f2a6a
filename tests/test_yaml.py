"""Every YAML file the package reads goes through one strict loader (imprint.io): a key given
twice in one mapping is refused with its line, where yaml.safe_load silently keeps the last."""

from pathlib import Path

import pytest
import yaml

from imprint.io import load_yaml_text, read_yaml

REPO = Path(__file__).resolve().parents[1]


def test_a_key_given_twice_at_the_top_level_names_the_key_and_the_second_line():
    text = "datasets: {}\nbackbones: {}\ndatasets: {}\n"
    with pytest.raises(ValueError) as err:
        load_yaml_text(text, "c.yaml")
    assert str(err.value) == (
        "c.yaml: not valid YAML: line 3, column 1: duplicate key 'datasets' (first given at line 1)"
    )
    assert yaml.safe_load(text) == {"datasets": {}, "backbones": {}}  # what it used to read


def test_a_key_given_twice_in_a_nested_mapping_names_its_line():
    text = "backbones:\n  pixels: {}\n  resnet18: {}\n  pixels:\n    image_size: 16\n"
    with pytest.raises(
        ValueError, match=r"line 4, column 3: duplicate key 'pixels' \(first given at line 2\)"
    ):
        load_yaml_text(text, "c.yaml")
    flow = "experiments:\n  e:\n    incremental: {base: 2, way: 1, base: 3}\n"
    with pytest.raises(ValueError, match=r"line 3, column 36: duplicate key 'base'"):
        load_yaml_text(flow, "c.yaml")
    # Keys that parse to one value are one key (YAML 1.1: 1 and 0x1 are both the integer 1).
    with pytest.raises(ValueError, match=r"line 2, column 1: duplicate key '1'"):
        load_yaml_text("1: 0\n0x1: 1\n", "map.yaml")


def test_equal_keys_in_different_mappings_and_merge_overrides_are_fine():
    text = (
        "a: {x: 1}\nb: {x: 2}\n"
        "defaults: &d {shots: 5, way: 1}\n"
        "mine:\n  <<: *d\n  shots: 1\n"  # an explicit key overrides a merged one
    )
    assert load_yaml_text(text, "f.yaml") == yaml.safe_load(text)
    assert load_yaml_text(text, "f.yaml")["mine"] == {"shots": 1, "way": 1}


def test_syntax_errors_keep_their_line_and_column(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: [1, 2\nb: 3\n")
    with pytest.raises(ValueError, match=rf"^{path}: not valid YAML: line 2, column 2: "):
        read_yaml(path)


def _yaml_files() -> list[Path]:
    found = [REPO / "config.yaml", *REPO.glob(".test/*/config.yaml")]
    for folder in ("workflow/configs", "workflow/schemas", "workflow/profiles", "workflow/imprint"):
        found += (REPO / folder).rglob("*.yaml")
    return sorted(found)


@pytest.mark.parametrize("path", _yaml_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_the_repository_yaml_files_load_as_yaml_safe_load_reads_them(path):
    assert read_yaml(path) == yaml.safe_load(path.read_text())


def test_the_readers_refuse_a_key_given_twice(tmp_path):
    from imprint.api.common import load_mapping
    from imprint.engine.grid import GridError, load_grid
    from imprint.planning.checks import check_config_file
    from imprint.planning.errors import ConfigError

    (tmp_path / "grid.yaml").write_text("gen: [mean]\nagg: [max]\ngen: [ls]\n")
    with pytest.raises(
        GridError, match=r"grid.yaml: not valid YAML: line 3, column 1: duplicate key 'gen'"
    ):
        load_grid(tmp_path / "grid.yaml")
    (tmp_path / "map.yaml").write_text("0: 0\n1: 1\n0: 1\n")
    with pytest.raises(
        ValueError, match=r"map.yaml: not valid YAML: line 3, column 1: duplicate key '0'"
    ):
        load_mapping(tmp_path / "map.yaml")
    (tmp_path / "c.yaml").write_text("datasets: {}\ndatasets: {}\n")
    with pytest.raises(
        ConfigError, match=r"c.yaml: not valid YAML: line 2, column 1: duplicate key"
    ):
        check_config_file(tmp_path / "c.yaml")
