"""Imprinting jobs that pack small groups: which groups share a job, and their paths."""

import copy

import pytest
import yaml
from _snakemake import REPO, load_config

from imprint.planning.batches import (
    MAX_FIELD,
    RUNS_X_ROWS_PER_JOB,
    Batch,
    experiment_batches,
    train_rows,
)
from imprint.planning.checks import check_config
from imprint.planning.errors import ConfigError
from imprint.planning.jobs import Group, experiment_groups

QUICKSTART = yaml.safe_load((REPO / "config.yaml").read_text())
PAPER = yaml.safe_load((REPO / "workflow/configs/paper.yaml").read_text())


def jobs(config: dict) -> dict[str, list[str]]:
    """Experiment -> its jobs' table paths below results/imprint/<experiment>/."""
    return {
        name: [b.path().split("/", 3)[3] for b in experiment_batches(config, name)]
        for name in config["experiments"]
    }


@pytest.mark.parametrize("config", [QUICKSTART, PAPER, load_config("tiny")])
def test_batches_hold_every_group_once_in_order(config):
    for name in config["experiments"]:
        groups = [g for b in experiment_batches(config, name) for g in b.groups()]
        assert groups == experiment_groups(config, name)


def test_the_quickstart_packs_each_dataset_and_backbone_into_one_job():
    got = jobs(QUICKSTART)
    maps = "map1-0+map1-1+map2-0+map2-1+map5-0+map5-1"
    for backbone in ("pixels", "pixels_random_relu", "resnet18_random"):
        assert f"digits/{backbone}/none/all+even+odd+short.parquet" in got["components"]
    for backbone in ("pixels", "resnet18_random"):
        assert f"digits/{backbone}/{maps}/binary.parquet" in got["multimodal"]
    for backbone in ("pixels", "pixels_random_relu", "resnet18_random"):
        assert f"digits/{backbone}/none/all.parquet" in got["sessions"]
    assert sum(len(paths) for paths in got.values()) == 12  # 31 groups


def test_the_paper_packs_only_the_oracle():
    # 3 runs × 60,000 rows × 4 tasks is small; every other paper group keeps its own job
    # (fig6's 153 runs on MNIST already exceed the budget, ImageNet's remappings too).
    got = jobs(PAPER)
    assert got["oracle"] == [
        f"{d}/{b}/none/all+even+odd+short.parquet"
        for d in ("MNIST", "FashionMNIST", "CIFAR-10")
        for b in ("resnet18", "resnet50", "vit_b_16", "swin_b")
    ]
    for name in ("aggfixed", "aggfocus", "fig6", "fewshot", "multimodal"):
        assert got[name] == [g.path().split("/", 3)[3] for g in experiment_groups(PAPER, name)]
    assert train_rows(PAPER, "ImageNet", "resnet18") == 1300 * 145 + 1
    assert train_rows(PAPER, "CombiDigits", "resnet18") == 60000 + 59001 + 7291 + 73257


def test_data_of_unknown_size_is_never_packed():
    config = load_config("own_embeddings")  # a backbone's own files, a dataset without sources
    assert jobs(config) == {
        "own": ["mydigits/my_fm/none/first3.parquet", "mydigits/my_fm/none/six.parquet"]
    }
    assert train_rows(config, "mydigits", "my_fm") is None


def test_a_job_keeps_to_the_budget_and_to_short_names():
    config = copy.deepcopy(QUICKSTART)
    # 60 binary remappings of digits × 16 runs: the names, not the work, split them.
    config["mappings"] = {f"remap{i:02d}": {0: 0, 1: 1} for i in range(60)}
    config["experiments"] = {"many": dict(QUICKSTART["experiments"]["multimodal"])}
    config["experiments"]["many"]["mappings"] = list(config["mappings"])
    batches = experiment_batches(config, "many")
    assert all(len("+".join(b.mappings)) <= MAX_FIELD for b in batches)
    assert [len(b.mappings) for b in batches if b.backbone == "pixels"] == [25, 25, 10]
    # Limited by the work: 2,000 runs × 1,198 training rows per group, two fit in a job.
    config = copy.deepcopy(QUICKSTART)
    exp = config["experiments"]["multimodal"]
    exp["grid"] = {"seeds": list(range(2000)), "gen": ["mean"]}
    assert 2 * 2000 * 1198 <= RUNS_X_ROWS_PER_JOB < 3 * 2000 * 1198
    batches = experiment_batches(config, "multimodal")
    assert [len(b.mappings) for b in batches if b.backbone == "pixels"] == [2, 2, 2]
    # A group over the budget alone: each task its own job.
    exp["grid"]["seeds"] = list(range(5000))
    config["experiments"]["multimodal"]["tasks"] = ["all", "even"]
    batches = experiment_batches(config, "multimodal")
    assert all(len(b.groups()) == 1 for b in batches) and len(batches) == 2 * 6 * 2


def test_a_batch_of_one_group_has_the_group_path():
    group = Group("aggfixed", "MNIST", "resnet18", "none", "all")
    assert Batch("aggfixed", "MNIST", "resnet18", ("none",), ("all",)).path() == group.path()


@pytest.mark.parametrize("section", ["tasks", "mappings"])
def test_names_with_the_separator_are_refused(section):
    config = copy.deepcopy(QUICKSTART)
    config[section]["a+b"] = {0: 0} if section == "mappings" else [0, 1]
    with pytest.raises(
        ConfigError, match=rf"{section}\.a\+b: a mapping or task name may not contain '\+'"
    ):
        check_config(config)
