"""The paper config plans on a machine with no data and no weights, with the expected jobs."""

import copy
import re

import pandas as pd
import pytest
import yaml
from _snakemake import REPO, job_counts, snakemake

from imprint.analysis.tables import TABLE1_COMMON, TABLE1_METHODS
from imprint.engine.grid import expand_grid, load_grid
from imprint.planning.checks import check_config
from imprint.planning.errors import ConfigError
from imprint.planning.jobs import collapse_groups, experiment_groups, ls_precision, uses_ls
from imprint.planning.mappings import expand_mappings, resolve_classes, section_mappings

PAPER = REPO / "workflow/configs/paper.yaml"
FMS, DIGIT_SETS, TASKS = 4, 3, 4  # backbones; MNIST/FashionMNIST/CIFAR-10; all/even/odd/short
REMAPPINGS = 100  # ImageNet: i = 1..10 classes merged per label × 10 variations

# Groups = (dataset, backbone, mapping, task) jobs per experiment, counted by hand from SPEC §4.
GROUPS = {
    "aggfixed": DIGIT_SETS * FMS * TASKS,  # 48: the twelve tasks × 4 FMs
    "aggfocus": DIGIT_SETS * FMS * TASKS,
    "oracle": DIGIT_SETS * FMS * TASKS,
    "fig6": DIGIT_SETS * FMS,  # task all
    "fewshot": DIGIT_SETS * FMS,
    "multimodal": (DIGIT_SETS + 1 + REMAPPINGS) * FMS,  # + CombiDigits + the remappings
    "baselines": DIGIT_SETS * FMS * TASKS,  # not in the paper: Table 1's baseline rows
    "fscil": FMS,  # not in the paper: class-incremental CIFAR-100, one task
}
NOT_IN_PAPER = ("baselines", "fscil")
# Configurations × seeds per group, from the reference's config_reprod files (tests/engine/test_grid.py).
RUNS_PER_GROUP = {
    "aggfixed": (288 + 6) * 3,
    "aggfocus": (1968 + 119) * 3,
    "oracle": 1 * 3,
    "fig6": 51 * 3,
    "fewshot": (35 + 35) * 5,
    "multimodal": (30 + 15) * 3,
    "baselines": (4 + 1) * 3,  # kNN m = 10, 20, 100, 200; the linear probe
    # mean and all (k fixed) + 5 GENs × k 1, 5; × NORMpost l2/quantile; then the training-free
    # baselines: mean and TEEN × NORMpost none/l2 × distance inner/Euclidean, FeCAM, RanPAC,
    # FeTrIL, SimpleShot; × 3 seeds (× 9 sessions)
    "fscil": ((2 + 5 * 2) * 2 + 2 * 2 * 2 + 3 + 1) * 3,
}
EXPECTED_JOBS = {
    "prepare_dataset": 8,  # MNIST, FashionMNIST, CIFAR10, CIFAR100, MNIST-M, USPS, SVHN, ImageNet
    "extract_embeddings": 5 * FMS * 2,  # MNIST, FashionMNIST, CIFAR-10/100, ImageNet × splits
    "extract_source_embeddings": 3 * FMS * 2,  # MNIST-M, USPS, SVHN (MNIST is reused)
    "join_embeddings": FMS * 2,  # CombiDigits
    # The oracle's (3 runs) and the baselines' (15) grids are small: their four tasks share a job
    # (planning/batches.py).
    "imprint_grid": sum(GROUPS.values())
    - (GROUPS["oracle"] + GROUPS["baselines"]) * (TASKS - 1) // TASKS,
    "gather_results": len(GROUPS),
    "compute_collapse": (DIGIT_SETS + 1 + REMAPPINGS) * FMS,
    "gather_collapse": 1,
    "rank_configurations": 3,  # aggfixed, aggfocus, fscil (its last session)
    "plot_accuracy_overview": 2,  # aggfixed, aggfocus
    "plot_accuracy_vs_proxies": 1,  # Figure 6
    "plot_fewshot_curves": 1,
    "plot_incremental_curves": 1,
    "plot_multimodal": 1,
    "plot_nc1_vs_gain": 1,
    "summarise_table1": 1,
    "plot_collapse": 1,
    # not in the paper: model choice over aggfixed's groups, CKA and stitching per digit dataset
    "compute_transferability": GROUPS["aggfixed"],
    "gather_transferability": 1,
    "plot_transferability": 1,
    "compute_similarity": DIGIT_SETS,
    "plot_similarity": 1,
    "compute_stitching": DIGIT_SETS,
    "plot_stitching": 1,
    "paper_figures": 1,
}


def configurations(experiment: dict) -> pd.DataFrame:
    grid = experiment["grid"]
    return expand_grid(grid if isinstance(grid, dict) else load_grid(grid)[1])


@pytest.fixture(scope="module")
def paper():
    return yaml.safe_load(PAPER.read_text())


def test_paper_groups_and_configuration_runs(paper):
    check_config(paper)
    groups = {name: experiment_groups(paper, name) for name in paper["experiments"]}
    assert {name: len(g) for name, g in groups.items()} == GROUPS
    for name, exp in paper["experiments"].items():
        assert len(configurations(exp)) == RUNS_PER_GROUP[name], name
    total = sum(GROUPS[n] * RUNS_PER_GROUP[n] for n in GROUPS if n not in NOT_IN_PAPER)
    assert total == 405_204  # the paper's "~0.5 M configuration runs", the baselines aside
    assert len(collapse_groups(paper)) == EXPECTED_JOBS["compute_collapse"]
    imagenet = {g.mapping for g in groups["multimodal"] if g.dataset == "ImageNet"}
    assert imagenet == {f"map{i}-{j}" for i in range(1, 11) for j in range(10)}
    assert {g.mapping for g in groups["multimodal"] if g.dataset == "CombiDigits"} == {
        "combidigits"
    }


def test_paper_imagenet_classes_are_the_two_seeded_selections(paper):
    classes = resolve_classes(paper["datasets"]["ImageNet"]["classes"])
    # The first values of random.seed(42/420); random.sample(range(1000), 50/100), as the
    # reference lists them in its comments.
    assert {654, 114, 25, 759, 281, 389, 26, 689, 800, 681} <= set(classes)
    assert len(classes) == 145 and classes == sorted(classes)  # 5 classes are in both draws


def test_mapping_families_and_single_members(paper):
    import random

    config = copy.deepcopy(paper)
    config["mappings"]["rand"] = "imagenet50"
    # The reference's prep.py: random.seed(42); random.sample(range(1000), 50) sliced by ten.
    random.seed(42)
    fifty = random.sample(range(1000), 50)
    members = expand_mappings(config["mappings"])
    for t in range(5):
        assert members[f"imagenet50-{t}"] == {
            c: i for i, c in enumerate(fifty[10 * t : 10 * t + 10])
        }
    exp = config["experiments"]["multimodal"]
    exp["mappings"] = {**exp["mappings"], "ImageNet": ["rand", "map10-0", "map1-9"]}
    assert section_mappings(config, exp, "ImageNet") == [
        *(f"imagenet50-{t}" for t in range(5)),
        "map10-0",
        "map1-9",
    ]
    check_config(config)
    exp["mappings"]["ImageNet"] = ["map11-0"]
    with pytest.raises(ConfigError, match=re.escape("mapping 'map11-0' is not defined")):
        check_config(config)
    # A member and its family's entry would run the member's jobs twice.
    exp["mappings"]["ImageNet"] = ["imagenet", "map10-0"]
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "mapping 'map10-0' is listed twice: as part of 'imagenet' and as 'map10-0'"
        ),
    ):
        check_config(config)
    exp["mappings"]["ImageNet"] = ["map10-0", "map10-0"]
    with pytest.raises(
        ConfigError,
        match=re.escape("mapping 'map10-0' is listed twice: as 'map10-0' and as 'map10-0'"),
    ):
        check_config(config)


def test_every_table1_method_is_in_the_pooled_experiments(paper):
    pooled = pd.concat(
        [configurations(paper["experiments"][n]) for n in paper["table1"]["experiments"]]
    )
    for method in TABLE1_METHODS:
        if method.only_where_run:  # zero-shot: the paper's backbones have no text tower
            continue
        mask = pd.Series(True, index=pooled.index)
        for col, value in (TABLE1_COMMON | dict(method.filters)).items():
            mask &= pooled[col] == value
        assert mask.sum() >= 3, method.method  # the three seeds


@pytest.mark.slow
def test_paper_figures_plans_without_data_or_weights(tmp_path):
    dry = snakemake(tmp_path, "paper_figures", "-n", "--quiet", "rules", "--configfile", str(PAPER))
    assert job_counts(dry.stdout + dry.stderr) == EXPECTED_JOBS
    assert not (tmp_path / "data").exists() and not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda c: c["experiments"]["multimodal"]["mappings"].pop("ImageNet"),
            "experiments.multimodal.mappings: no entry for dataset 'ImageNet'",
        ),
        (
            # A new dict: the YAML alias makes collapse share multimodal's mapping dict.
            lambda c: c["collapse"].update(
                mappings={**c["collapse"]["mappings"], "SVHN": ["none"]}
            ),
            "collapse.mappings: 'SVHN' is not one of this section's datasets",
        ),
        (
            lambda c: c["datasets"]["ImageNet"].update(classes="imagenet1k"),
            "datasets.ImageNet.classes: unknown class selection 'imagenet1k'",
        ),
        (
            lambda c: c["table1"]["experiments"].append("aggfixd"),
            "table1.experiments: 'aggfixd' is not defined under experiments",
        ),
        (
            lambda c: c.update(model_choice={"experiments": ["aggfixed", "baseline"]}),
            "model_choice.experiments: 'baseline' is not defined under experiments",
        ),
        (
            lambda c: c["backbones"].update(both={"concat": ["resnet18", "vit_b16"]}),
            "backbones.both.concat: 'vit_b16' is not defined under backbones",
        ),
        (
            lambda c: c["backbones"].update(
                both={"concat": ["resnet18", "vit_b_16"]}, all3={"concat": ["both", "swin_b"]}
            ),
            "backbones.all3.concat: 'both' is itself a concatenation",
        ),
        (
            lambda c: (
                c["backbones"].update(both={"concat": ["resnet18", "vit_b_16"]}),
                c["experiments"]["oracle"]["backbones"].append("both"),
            ),
            "uses GEN ls or kls, which need this concatenated backbone's ridge λ",
        ),
        (
            lambda c: c.pop("collapse"),
            "experiments.multimodal.figures: nc1_vs_gain needs the collapse section",
        ),
        # Grids are expanded at planning, so a typo does not wait for the imprint jobs.
        (
            lambda c: c["experiments"]["aggfixed"].update(grid="paper:agfixed"),
            "experiments.aggfixed.grid (paper:agfixed): unknown paper grid 'agfixed'",
        ),
        (
            lambda c: c["experiments"]["aggfixed"].update(grid={"gen": ["kmean"]}),
            "experiments.aggfixed.grid: grid key 'gen' has unknown value(s) ['kmean']",
        ),
        (
            lambda c: c["experiments"]["aggfixed"].update(grid={"norm_pree": ["l2"]}),
            "experiments.aggfixed.grid: unknown grid key(s) ['norm_pree']",
        ),
        (
            lambda c: c["mappings"].update({"map1-0": {0: 0}}),
            "mappings.map1-0: the name 'map1-0' is also given by mappings.imagenet",
        ),
    ],
)
def test_config_mistakes_name_the_key(paper, change, message):
    config = copy.deepcopy(paper)
    change(config)
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(config)


def test_every_paper_experiment_has_ls_and_asks_for_float32(paper):
    # Every experiment of the paper has ls or kls; the baselines have none.
    assert all(uses_ls(paper, e) for e in paper["experiments"] if e not in NOT_IN_PAPER)
    assert not any(uses_ls(paper, e) for e in NOT_IN_PAPER)
    assert ls_precision(paper) == "float32"


@pytest.mark.parametrize(
    ("incremental", "grid_change", "message"),
    [
        (
            {"base": 4, "way": 1},
            {},
            "experiments.fscil.incremental.base: base session of 4 classes: needs 2..3 (task "
            "hundred has 3 classes)",
        ),
        (
            {"base": 60, "way": 7},
            {},
            "experiments.fscil.incremental.way: 40 classes after the base session do not split "
            "into sessions of 7 (task hundred has 100 classes, base 60)",
        ),
        (
            {"protocol": "fscil_cifar100", "sessions": [[0, 1]]},
            {},
            "experiments.fscil.incremental.protocol: excludes sessions: give only one of "
            "protocol, sessions, or base with way",
        ),
        (
            {"protocol": "fscil_cifar100"},
            {"gen": ["kls"]},
            "experiments.fscil.grid: GEN kls is not incremental",
        ),
        ({"protocol": "fscil_cifar100"}, {"fewshot": [5]}, "an incremental grid takes fewshot -1"),
    ],
)
def test_incremental_config_mistakes_name_the_key(paper, incremental, grid_change, message):
    config = copy.deepcopy(paper)
    exp = config["experiments"]["fscil"]
    exp["incremental"] = incremental
    parts = exp["grid"]["parts"]  # the change goes to the first part (every class-wise GEN)
    exp["grid"] = {"parts": [{**parts[0], **grid_change}, *parts[1:]]}
    if incremental.get("base") == 4:
        config["tasks"]["hundred"] = [0, 1, 2]
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_config(config)
