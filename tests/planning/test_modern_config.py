"""workflow/configs/modern.yaml: the paper's §5.1 questions of current foundation models named by
provider (timm, open_clip), and zero-shot text proxies, planned offline with the expected jobs."""

import copy

import pytest
import yaml
from _snakemake import REPO, job_counts, snakemake

from imprint.data.ls_lambda import split_model
from imprint.planning.checks import check_config
from imprint.planning.jobs import experiment_groups, ls_lambda, uses_ls, uses_text

MODERN = REPO / "workflow/configs/modern.yaml"
PAPER = REPO / "workflow/configs/paper.yaml"
FMS, DATASETS, SPLITS, TASKS = 5, 3, 2, 4  # MNIST/FashionMNIST/CIFAR-10; all/even/odd/short


@pytest.fixture(scope="module")
def modern():
    config = yaml.safe_load(MODERN.read_text())
    check_config(copy.deepcopy(config))  # names, λ for ls, model forms: planning's checks
    return config


CLIP_LIKE = {"siglip2_vitb16", "openclip_vitb16_laion2b"}


def test_every_backbone_is_a_model_by_name_with_its_lambda(modern):
    assert len(modern["backbones"]) == FMS
    for name, spec in modern["backbones"].items():
        provider, model = split_model(spec["model"])
        assert provider == ("open_clip" if name in CLIP_LIKE else "timm") and model, name
        assert ls_lambda(modern, name) == spec["ls_lambda"] > 0
    assert all(uses_ls(modern, e) for e in ("aggfixed", "aggfocus", "oracle"))
    assert [e for e in modern["experiments"] if uses_text(modern, e)] == ["zero_shot"]
    assert set(modern["experiments"]["zero_shot"]["backbones"]) == CLIP_LIKE


def test_the_grids_are_the_papers(modern):
    # The §5.1 experiments and the baselines run the paper config's grids, unchanged.
    paper = yaml.safe_load(PAPER.read_text())
    for name in ("aggfixed", "aggfocus", "oracle", "baselines"):
        assert modern["experiments"][name]["grid"] == paper["experiments"][name]["grid"], name
    table1 = ["aggfixed", "aggfocus", "oracle", "baselines", "zero_shot"]
    assert modern["table1"] == {"experiments": table1}
    for name in modern["experiments"]:
        fms = len(CLIP_LIKE) if name == "zero_shot" else FMS
        assert len(experiment_groups(modern, name)) == DATASETS * fms * TASKS


@pytest.mark.slow
def test_modern_plans_without_data_or_weights(tmp_path):
    dry = snakemake(
        tmp_path, "paper_figures", "-n", "--quiet", "rules", "--configfile", str(MODERN)
    )
    jobs = job_counts(dry.stdout + dry.stderr)
    assert jobs["extract_embeddings"] == DATASETS * FMS * SPLITS
    assert jobs["prepare_dataset"] == DATASETS
    assert jobs["compute_transferability"] == DATASETS * FMS * TASKS  # model choice's groups
    assert jobs["compute_collapse"] == DATASETS * FMS
    assert jobs["summarise_table1"] == 1 and jobs["gather_results"] == 5
    assert jobs["extract_text_proxies"] == DATASETS * len(CLIP_LIKE)
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()
