"""Claims of README.md and docs/*.md that no other test checked, each against an expectation
written from the claim itself (never from the code's own output). Each test's docstring quotes
the claim and names the file and line where it is made. Fast: no Snakemake run, small data."""

from __future__ import annotations

import json
import re
import shlex
from itertools import product
from math import factorial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _parse(argv: list[str]):
    """`imprint ARGV` parsed by the command's own parser; a refusal fails the test."""
    from imprint.cli.main import build_parser

    try:
        return build_parser().parse_args(argv)
    except SystemExit as exit_:
        raise AssertionError(f"imprint {shlex.join(argv)} does not parse ({exit_.code})") from None


# --- The command line -----------------------------------------------------------------------


def _table_commands(path: str, pattern: str) -> dict[str, str]:
    """{command: example} of a Markdown table whose rows start `| ...` and match `pattern`."""
    found = {}
    for line in (REPO / path).read_text(encoding="utf-8").splitlines():
        match = re.match(pattern, line)
        if match:
            found[match["name"]] = match["example"]
    return found


README_ROWS = r"^\| `(?P<example>imprint (?P<name>[\w-]+)[^`]*)` \|"
COMMAND_LINE_ROWS = r"^\| `(?P<name>[\w-]+)` \| [^|]+ \| `(?P<example>imprint [^`]+)` \|$"


def test_the_command_tables_list_every_imprint_command_and_only_those():
    """README.md:135-147 (the table of "The command line") and docs/command-line.md:8-20
    (its table of commands), which README.md:183 calls "every `imprint` command": the tables
    name exactly the commands `imprint --help` offers, with the same examples."""
    from imprint.cli.main import build_parser

    parser = build_parser()
    offered = set(next(a for a in parser._actions if a.dest == "command").choices)
    readme = _table_commands("README.md", README_ROWS)
    page = _table_commands("docs/command-line.md", COMMAND_LINE_ROWS)
    assert len(readme) >= 11 and len(page) >= 11  # the tables were read
    assert set(readme) == offered, sorted(set(readme) ^ offered)
    assert set(page) == offered, sorted(set(page) ^ offered)
    for name, example in readme.items():
        assert page[name] == example, f"README and command-line.md differ on `{name}`"


def _code_block_commands(path: str) -> list[str]:
    """The `imprint ...` lines of a page's fenced code blocks, continuation lines joined,
    leaving out those with placeholders (`...`, `[PATH ...]`)."""
    lines, inside, joined = [], False, ""
    for raw in (REPO / path).read_text(encoding="utf-8").splitlines():
        if raw.lstrip().startswith("```"):
            inside = not inside
            continue
        if not inside:
            continue
        joined += raw.strip()
        if joined.endswith("\\"):
            joined = joined[:-1] + " "
            continue
        if joined.startswith("imprint ") and "..." not in joined and "--help" not in joined:
            lines.append(joined)
        joined = ""
    return lines


EXAMPLE_PAGES = (
    "README.md",
    "docs/command-line.md",
    "docs/own-models.md",
    "docs/model-choice.md",
    "docs/incremental.md",
    "docs/troubleshooting.md",
)
DOCUMENTED_EXAMPLES = [
    *(
        pytest.param(example, id=f"README.md table: {name}")
        for name, example in _table_commands("README.md", README_ROWS).items()
    ),
    *(
        pytest.param(example, id=f"command-line.md table: {name}")
        for name, example in _table_commands("docs/command-line.md", COMMAND_LINE_ROWS).items()
    ),
    *(
        pytest.param(line, id=f"{page} code {i}")
        for page in EXAMPLE_PAGES
        for i, line in enumerate(_code_block_commands(page), 1)
    ),
]


@pytest.mark.parametrize("example", DOCUMENTED_EXAMPLES)
def test_every_documented_imprint_example_is_a_valid_command_line(example):
    """The examples of README.md:135-147, docs/command-line.md:10-20 and :56-60,
    docs/own-models.md:40-41, docs/model-choice.md:9-12 and docs/incremental.md:22-23 are
    command lines `imprint` accepts as written (flags, their values, required arguments)."""
    argv = shlex.split(example, comments=True)
    assert argv[0] == "imprint"
    _parse(argv[1:])


def test_the_flags_the_docs_name_exist_on_their_commands():
    """Flags the pages name for a command: docs/command-line.md:34-39 (`--task`, `--mapping`,
    `--temperature`, `--seed`, `--knn-k`), :43-46 (`--force`), docs/components.md:83
    (`--ls-precision`) and :132 (`--tag`), docs/collapse-statistics.md:25 (`--ood`),
    docs/incremental.md:23 (`--sessions`, `--protocol`), docs/troubleshooting.md:74
    (`--out`, `--out-prefix`), :105 (`--penalties`), docs/model-choice.md:12 (concatenation)."""
    from imprint.cli.main import build_parser

    named = {
        "evaluate": ["--task", "--mapping", "--ls-precision", "--ls-lambda", "--tag", "--force"],
        "probe": ["--temperature", "--seed", "--knn-k", "--penalties", "--task", "--mapping"],
        "collapse": ["--ood", "--mapping", "--out", "--force"],
        "incremental": ["--sessions", "--protocol", "--base", "--way", "--shots", "--base-shots"],
        "cd": ["--out-prefix", "--seed", "--max-methods", "--force"],
        "concat": ["--out", "--normalise", "--force"],
        "transferability": ["--out", "--mapping", "--force"],
        "similarity": ["--out", "--force"],
        "grid": ["--out", "--force"],
    }
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for command, flags in named.items():
        known = {s for a in commands[command]._actions for s in a.option_strings}
        assert set(flags) <= known, (command, sorted(set(flags) - known))
    # --force on every command that writes, and on no other (README.md:149-151).
    for command, sub in commands.items():
        known = {s for a in sub._actions for s in a.option_strings}
        writes = bool(known & {"--out", "--out-prefix"})
        assert ("--force" in known) == writes, command


def test_documented_flag_defaults():
    """Defaults the pages state: `imprint verify [PATH ...]` "every set below PATH (default
    results/)" (docs/troubleshooting.md:57; cli/checks.py:16); "`shots` and `base_shots`
    (default -1, all rows)" (docs/incremental.md:40); "ls/kls are solved in float64 by default
    (... `imprint evaluate --ls-precision`)" (docs/components.md:82-83); Holm's correction "at
    α = 0.05" (docs/collapse-statistics.md:57-58); `imprint concat` "parts L2-normalised"
    (docs/model-choice.md:12); `imprint collapse` on L2-normalised embeddings
    (docs/collapse-statistics.md:5-7)."""
    assert _parse(["verify"]).paths == ["results"]
    inc = _parse(["incremental", "--train", "a", "--test", "b", "--grid", "g", "--out", "o.csv"])
    assert (inc.shots, inc.base_shots) == (-1, -1)
    ev = _parse(["evaluate", "--train", "a", "--test", "b", "--grid", "g", "--out", "o.csv"])
    assert ev.ls_precision == "float64"
    cd = _parse(["cd", "t.csv", "--out-prefix", "cd/x"])
    assert (cd.method, cd.score, cd.alpha) == ("config_id", "accuracy", 0.05)
    assert _parse(["concat", "a", "b", "--out", "ab"]).normalise == "l2"
    assert _parse(["collapse", "a.npz"]).no_l2 is False


# --- Baselines ------------------------------------------------------------------------------


def test_probe_searches_nine_decays_per_row_and_knn_uses_the_dinov2_settings(tmp_path):
    """docs/model-choice.md:22-25: "λ is searched over 9 weight decays per row (1e-6 … 1e2,
    λ = rows × decay) on a stratified, seeded 20 % of the training rows ..., then refitted on
    every row"; :27-28: kNN "the k ∈ {10, 20, 100, 200} most similar training rows vote
    exp(s/T), T = 0.07" (also the defaults of `imprint probe`, cli/model_choice.py:20-21)."""
    from imprint.api.baselines import probe_files

    rng = np.random.default_rng(0)
    per_class, classes = 100, 2  # 20 % held out: 20 per class, 160 rows fitted
    y = np.repeat(np.arange(classes), per_class)  # overlapping classes: the fits converge fast
    x = (rng.standard_normal((y.size, 4)) + 0.5 * y[:, None]).astype(np.float32)
    np.savez(tmp_path / "train.npz", embeddings=x, labels=y)
    np.savez(tmp_path / "test.npz", embeddings=x[::3], labels=y[::3])
    table = probe_files(tmp_path / "train.npz", tmp_path / "test.npz", tmp_path / "p.csv")

    probe = table[table["method"] == "linear_probe"].iloc[0]
    fitted = classes * per_class * 4 // 5
    searched = sorted(float(p) for p in json.loads(probe["penalty_search"]))
    expected = [fitted * 10.0**e for e in range(-6, 3)]
    np.testing.assert_allclose(searched, expected, rtol=1e-5)
    # Refitted on all 200 rows at the chosen decay × 200.
    decay = probe["penalty"] / (classes * per_class)
    assert any(np.isclose(decay, 10.0**e, rtol=1e-9) for e in range(-6, 3)), decay

    knn = table[table["method"] == "knn"]
    assert knn["k"].tolist() == [10, 20, 100, 200]
    assert np.allclose(knn["temperature"], 0.07)


# --- Statistics -----------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(1, 11))
def test_the_smallest_wilcoxon_p_value_of_n_voters_is_two_over_two_to_the_n(n):
    """docs/command-line.md:65-67 and docs/collapse-statistics.md:89-91: "with n [voters] the
    smallest two-sided Wilcoxon p-value is 2/2ⁿ, so below 6 voters no pair can differ at
    α = 0.05": one method ahead of the other on every voter, by distinct margins."""
    from imprint.analysis.stats import critical_difference

    rows = [
        {"method": method, "dataset": f"d{v}", "accuracy": 50.0 + (v + 1 if method == "a" else 0)}
        for v in range(n)
        for method in ("a", "b")
    ]
    result = critical_difference(pd.DataFrame(rows), "method", "accuracy", "dataset")
    assert result.raw_pvalues.loc["a", "b"] == pytest.approx(2 / 2**n, rel=1e-12)
    assert bool(result.significant.loc["a", "b"]) == (n >= 6)


@pytest.mark.parametrize("n", [3, 6, 8])
def test_spearman_p_value_is_exact_up_to_eight_points(n):
    """docs/collapse-statistics.md:45-46 and docs/paper.md:100: nc1_vs_gain reports
    "Spearman's rho (p-value exact up to 8 points)". A perfect rank order of n points is
    reached by 2 of the n! pairings (|rho| = 1), so the exact p-value is 2/n!."""
    from imprint.analysis.correlation import spearman

    x = np.arange(float(n))
    rho, p = spearman(x, x**2)
    assert rho == pytest.approx(1.0)
    assert p == pytest.approx(2 / factorial(n), rel=1e-9)


def test_spearman_beyond_eight_points_is_scipys_approximation():
    """The other side of "exact up to 8 points" (docs/collapse-statistics.md:46): from 9
    points on, the p-value is scipy's t approximation."""
    from scipy import stats

    from imprint.analysis.correlation import spearman

    x = np.arange(9.0)
    y = np.array([0, 2, 1, 3, 5, 4, 6, 8, 7], dtype=float)
    assert spearman(x, y)[1] == pytest.approx(stats.spearmanr(x, y).pvalue, rel=1e-12)


# --- The results table ----------------------------------------------------------------------


def _documented_columns() -> list[str]:
    """The results-table columns docs/components.md lists in "The results table", in order:
    every name in backticks up to `inference_seconds`, comma lists split."""
    text = (REPO / "docs/components.md").read_text(encoding="utf-8")
    section = text.split("## The results table", 1)[1].split("inference_seconds", 1)[0]
    names = [n.strip() for quoted in re.findall(r"`([^`]+)`", section) for n in quoted.split(",")]
    return [*names, "inference_seconds"]


def _three_classes(tmp_path: Path) -> tuple[Path, Path]:
    """A training and a test file of classes 7, 2 and 4 (in that order of first appearance),
    rows shuffled, each class at its own scale so that the quantile NORMpost sees the order."""
    rng = np.random.default_rng(1)
    files = []
    for split, n in (("train", 40), ("test", 20)):
        y = np.repeat([7, 2, 4], n)
        scale = np.where(y == 7, 3.0, np.where(y == 2, 1.0, 0.3))[:, None]
        centre = np.eye(5)[[{7: 0, 2: 1, 4: 2}[v] for v in y]]
        x = (centre + 0.8 * rng.standard_normal((y.size, 5))) * scale
        order = rng.permutation(y.size)
        files.append(tmp_path / f"{split}.npz")
        np.savez(files[-1], embeddings=x[order].astype(np.float32), labels=y[order])
    return files[0], files[1]


def test_results_table_columns_and_default_task_order(tmp_path):
    """docs/components.md:130-134: "One row per configuration × seed: `config_id` (a stable
    12-hex ID of the configuration, seed excluded), the configuration keys ..., `seed`,
    `accuracy` (top-1, percent), `f1_macro`, `f1_per_class` (JSON list, one-vs-rest, percent),
    `n_proxies`, `gen_seconds`, `inference_seconds`"; api/evaluation.py:39 (evaluate_files):
    "classes=None: every class of the training file (after the mapping), in ascending order";
    docs/own-models.md:44-46: "The task's class order is the imprinting order"."""
    from imprint.api.evaluation import evaluate_files

    train, test = _three_classes(tmp_path)
    grid = {"seeds": [0, 1], "gen": ["mean", "random"], "k": [2], "norm_post": ["quantile"]}

    def run(name, classes):
        table = evaluate_files(train, test, grid, tmp_path / name, classes=classes, progress=False)
        return table.drop(columns=["gen_seconds", "inference_seconds"])

    default = run("default.parquet", None)
    assert list(pd.read_parquet(tmp_path / "default.parquet").columns) == _documented_columns()
    assert len(default) == 2 * 2  # configurations × seeds
    assert default["config_id"].str.fullmatch("[0-9a-f]{12}").all()
    assert default.groupby("config_id")["seed"].nunique().eq(2).all()  # one id for both seeds
    assert default["accuracy"].between(0, 100).all()
    for row in default.itertuples():
        per_class = json.loads(row.f1_per_class)
        assert len(per_class) == 3 and row.f1_macro == pytest.approx(np.mean(per_class))
    pd.testing.assert_frame_equal(default, run("ascending.parquet", [2, 4, 7]))


# --- The quickstart config ------------------------------------------------------------------


@pytest.fixture(scope="module")
def quickstart():
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _grid_values(experiment: dict) -> pd.DataFrame:
    from imprint.engine.grid import expand_grid

    return expand_grid(experiment["grid"])


def test_the_quickstart_config_needs_no_download(quickstart):
    """README.md:38-42 and docs/quickstart.md:3-14: "`config.yaml` needs no network and no
    GPU"; "scikit-learn's bundled handwritten digits"; "three representations that need no
    download: `pixels` (the resized image, 768-d), `pixels_random_relu` (seeded random ReLU
    features of it, 1,024-d) and `resnet18_random` (a ResNet-18 at a seeded random init,
    64-px input)"."""
    from imprint.data.backbones import get_spec

    assert quickstart["datasets"] == {"digits": {"sources": ["digits"]}}
    assert set(quickstart["backbones"]) == {"pixels", "pixels_random_relu", "resnet18_random"}
    for name, options in quickstart["backbones"].items():
        assert not {"weights", "embeddings", "concat"} & set(options or {}), name
        assert get_spec(name).default_weights is None, name  # nothing to download
    assert get_spec("pixels").dim == 768 and get_spec("pixels_random_relu").dim == 1024
    assert quickstart["backbones"]["resnet18_random"]["image_size"] == 64


def test_the_quickstart_runs_the_five_documented_experiments(quickstart):
    """docs/quickstart.md:22-34 (and README.md:44-48): "Five experiments, two seeds each":
    `components` ("every GEN, NORM and AGG family, with the linear-probe and kNN baselines, on
    all three representations and four tasks"; CD diagram per GEN and accuracy overview),
    `proxies` (accuracy against k per GEN), `multimodal` ("labels merge i = 1, 2 or 5 digits
    into one", "map{i}-{j}, two variations each"), `fewshot` ("with and without the Weibull
    presampling filter") and `sessions` ("the first five digits, then one digit per session
    from 5 images"); docs/model-choice.md:53-54: "the quickstart's `components` experiment has
    both (m = 10, 20)"."""
    experiments = quickstart["experiments"]
    assert set(experiments) == {"components", "proxies", "multimodal", "fewshot", "sessions"}
    for name, experiment in experiments.items():
        assert _grid_values(experiment)["seed"].nunique() == 2, name
        assert experiment["datasets"] == ["digits"], name

    components = experiments["components"]
    assert components["backbones"] == ["pixels", "pixels_random_relu", "resnet18_random"]
    assert components["tasks"] == ["all", "even", "odd", "short"]
    assert components["figures"] == ["cd_diagram", "accuracy_overview"]
    assert components["figure_options"]["cd_diagram"]["highlight"] == ["gen"]
    configs = _grid_values(components)
    families = {  # docs/components.md:10-17 and :19-22
        "gen": {"mean", "kmeans", "kmedoids", "fps", "random", "cov_max", "all", "none"}
        | {"ls", "kls", "linear_probe"},
        "norm_pre": {"none", "l2"},
        "norm_post": {"none", "l2", "quantile"},
        "norm_inf": {"none", "l2"},
        "agg": {"max", "mnn"},
        "distance": {"inner_product", "cosine", "euclidean", "manhattan", "chebyshev"}
        | {"mahalanobis"},
        "weighting": {"uniform", "weighted_by_distance", "exp_similarity"},
    }
    for key, values in families.items():
        assert set(configs[key]) == values, key
    knn = configs[(configs["weighting"] == "exp_similarity")]
    assert set(knn["gen"]) == {"all"} and set(knn["distance"]) == {"cosine"}
    assert set(knn["m"]) == {10, 20}

    proxies = experiments["proxies"]
    assert proxies["figures"] == ["accuracy_vs_proxies"]
    assert _grid_values(proxies)["k"].nunique() > 3

    multimodal = experiments["multimodal"]
    assert multimodal["tasks"] == ["binary"] and quickstart["tasks"]["binary"] == [0, 1]
    names = {f"map{i}-{j}" for i, j in product((1, 2, 5), (0, 1))}
    assert set(multimodal["mappings"]) == names
    for name in names:
        merged = int(name[3 : name.index("-")])
        labels = pd.Series(quickstart["mappings"][name])
        assert labels.value_counts().to_dict() == {0: merged, 1: merged}, name
    assert multimodal["figures"] == ["multimodal", "nc1_vs_gain"]

    fewshot = _grid_values(experiments["fewshot"])
    assert {"all", "weibull"} <= set(fewshot["presampling"])
    assert experiments["fewshot"]["figures"] == ["fewshot_curves"]

    sessions = experiments["sessions"]
    assert sessions["incremental"] == {
        "base": 5,
        "way": 1,
        "shots": 5,
        "methods": {"ranpac": {"M": 2000}},
    }
    gens = {g for part in sessions["grid"]["parts"] for g in part["gen"]}
    assert {"teen", "fecam", "ranpac", "fetril"} <= gens  # the training-free baselines
    assert sessions["tasks"] == ["all"] and quickstart["tasks"]["all"] == list(range(10))
    assert sessions["backbones"] == components["backbones"]
    assert sessions["figures"] == ["incremental_curves", "cd_diagram"]


def test_the_quickstart_draws_every_figure_kind_and_measures_every_mapping(quickstart):
    """docs/quickstart.md:32-34: "Beside them: neural-collapse metrics for every mapping,
    critical-difference statistics, Table 1 (over `components`), the model-choice estimates
    and CKA (over `components`), and every figure kind" (README.md:47-48)."""
    from imprint.planning.figure_kinds import FIGURE_KINDS

    drawn = {kind for e in quickstart["experiments"].values() for kind in e["figures"]}
    assert drawn == set(FIGURE_KINDS)
    assert set(quickstart["collapse"]["mappings"]) == set(quickstart["mappings"])
    assert quickstart["table1"]["experiments"] == ["components"]
    assert quickstart["model_choice"]["experiments"] == ["components"]


# --- Registries -----------------------------------------------------------------------------


def test_the_registry_names_the_configuration_page_lists():
    """docs/configuration.md:29-30: registry `sources` "(`digits`, `MNIST`, `FashionMNIST`,
    `CIFAR10`, `CIFAR100`, `SVHN`, `USPS`, `MNIST-M`, `ImageNet`)"; :38-40: backbones
    "`resnet18`, `resnet50`, `vit_b_16`, `swin_b`, the offline `pixels`,
    `pixels_random_relu`, `resnet18_random`, and with timm `dinov2_vits14`, `clip_vit_b16`,
    `convnextv2_femto`"; docs/own-models.md:96-98: "`dinov2_vits14` (... 384-d ...),
    `clip_vit_b16` (... 768-d) and `convnextv2_femto` (384-d)"."""
    from imprint.data.backbones import BACKBONES
    from imprint.data.datasets import DATASETS

    sources = "digits MNIST FashionMNIST CIFAR10 CIFAR100 SVHN USPS MNIST-M ImageNet"
    assert set(DATASETS) == set(sources.split())
    backbones = "resnet18 resnet50 vit_b_16 swin_b pixels pixels_random_relu resnet18_random"
    timm = {"dinov2_vits14": 384, "clip_vit_b16": 768, "convnextv2_femto": 384}
    assert set(BACKBONES) == set(backbones.split()) | set(timm)
    assert {name: BACKBONES[name].dim for name in timm} == timm


# --- Profiles, resources and the GPU check --------------------------------------------------


def _rule_lines(rule: str) -> list[str]:
    """The lines of `rule NAME:`'s block in workflow/rules/*.smk."""
    for path in sorted((REPO / "workflow/rules").glob("*.smk")):
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if line.startswith(f"rule {rule}:"):
                end = next(
                    (j for j in range(i + 1, len(lines)) if re.match(r"^\S", lines[j])),
                    len(lines),
                )
                return lines[i + 1 : end]
    raise AssertionError(f"no rule {rule}")


def test_profiles_and_rules_ask_for_what_the_docs_say():
    """docs/paper.md:133-134: "Only the embedding rules ask for a GPU (`resources: gpu=1`); the
    slurm profile asks 32 GB for imprinting jobs and gives them 4 threads" (also
    docs/performance.md:139-140, docs/quickstart.md:77-78); docs/paper.md:33-35: "the default
    profile ... sets [gpu=1] too. Each extraction takes up to 8 cores"; docs/quickstart.md:75:
    "One core per imprinting job (`threads: 1`)"."""
    slurm = yaml.safe_load((REPO / "workflow/profiles/slurm/config.yaml").read_text())
    assert slurm["set-resources"]["imprint_grid"]["mem_mb"] == 32000
    assert slurm["set-threads"]["imprint_grid"] == 4
    with_gpu = {rule for rule, res in slurm["set-resources"].items() if res.get("gpu")}
    assert with_gpu == {"extract_embeddings", "extract_source_embeddings"}
    default = yaml.safe_load((REPO / "workflow/profiles/default/config.yaml").read_text())
    assert default["resources"] == {"gpu": 1}

    rules_with_gpu = set()
    for path in sorted((REPO / "workflow/rules").glob("*.smk")):
        rule = None
        for line in path.read_text().splitlines():
            start = re.match(r"^(?:rule|use rule \w+ as) (\w+)", line)
            rule = start[1] if start else rule
            if re.match(r"^\s+gpu\s*=", line):
                rules_with_gpu.add(rule)
    assert rules_with_gpu == {"extract_embeddings"}  # extract_source_embeddings reuses it
    assert "    threads: 8" in _rule_lines("extract_embeddings")
    assert "    threads: 1" in _rule_lines("imprint_grid")


def test_the_gpu_check_steps_have_the_documented_time_limits():
    """docs/development.md:107: "Each step runs under its own time limit (120/120/110/140/60 s;
    `GPU_CHECK_LIMITS` overrides)"."""
    script = (REPO / "benchmarks/gpu_check.sh").read_text()
    defaults = re.search(r"^defaults=\(([\d ]+)\)$", script, re.M)
    assert defaults and defaults[1].split() == ["120", "120", "110", "140", "60"]
    assert "GPU_CHECK_LIMITS" in script


def test_leave_one_out_knn_classifies_5000_seeded_query_rows_with_k_20():
    """docs/model-choice.md:65-66: "Leave-one-out kNN accuracy: the kNN above (k = 20), each
    of 5,000 seeded query rows classified by the other rows" (also api/model_choice.py:34-35,
    transferability_file: "leave-one-out kNN accuracy (5,000 seeded query rows)")."""
    from imprint.analysis.transferability.neighbours import loo_knn_accuracy

    rng = np.random.default_rng(5)
    y = np.arange(5400) % 3
    x = (rng.standard_normal((y.size, 4)) + 0.7 * np.eye(4)[y]).astype(np.float32)
    default = loo_knn_accuracy(x, y)
    assert default == loo_knn_accuracy(x, y, k=20, temperature=0.07, queries=5000, seed=0)
    correct = default * 5000 / 100  # a share of 5,000 query rows, not of all 5,400
    assert correct == pytest.approx(round(correct), abs=1e-6)


def _rule_files() -> dict[str, dict[str, str]]:
    """{rule: {"log": path, "benchmark": path, "base": rule it reuses}} of the static rules of
    workflow/rules/*.smk (the figure rules are made from FIGURE_KINDS)."""
    rules: dict[str, dict[str, str]] = {}
    for path in sorted((REPO / "workflow/rules").glob("*.smk")):
        lines, rule = path.read_text().splitlines(), None
        for i, line in enumerate(lines):
            start = re.match(r"^(?:rule (\w+)|use rule (\w+) as (\w+))", line)
            if start:
                rule = start[1] or start[3]
                rules[rule] = {"base": start[2] or rule}
            elif rule and re.match(r"^    (log|benchmark):$", line):
                value = re.match(r'^\s+"([^"]+)",?$', lines[i + 1])
                rules[rule][line.strip(" :")] = value[1]
    return rules


def test_every_job_logs_under_its_rule_and_the_heavy_ones_record_time_and_memory():
    """README.md:54: "each job's log under `logs/`, named by its rule"; docs/quickstart.md:
    69-71 and docs/troubleshooting.md:128-131: logs in "`logs/<rule>/…` (`logs/<rule>.log`
    for a rule that runs once)", and "the time and memory of each extraction, imprinting,
    collapse, transferability and CKA job are in `benchmarks/<rule>/…`"."""
    from imprint.planning.figure_kinds import FIGURE_KINDS

    rules = _rule_files()
    assert {"imprint_grid", "extract_embeddings", "gather_results"} <= set(rules)
    for rule, files in rules.items():
        base = files["base"]
        log = files.get("log", "")
        under = log.startswith((f"logs/{rule}/", f"logs/{base}/"))
        assert log == f"logs/{rule}.log" or under, (rule, log)
    for kind in FIGURE_KINDS.values():
        assert kind.log.startswith(f"logs/{kind.rule}/"), kind.name
    benchmarked = {rule: f["benchmark"] for rule, f in rules.items() if "benchmark" in f}
    heavy = {"extract_embeddings", "extract_source_embeddings", "extract_own_images"}
    heavy |= {"extract_text_proxies"}  # an extraction too: a text tower's forward passes
    heavy |= {"imprint_grid"}
    heavy |= {"compute_collapse", "compute_transferability", "compute_similarity"}
    heavy |= {"compute_stitching"}
    assert set(benchmarked) == heavy
    for rule, path in benchmarked.items():
        assert path.startswith((f"benchmarks/{rule}/", f"benchmarks/{rules[rule]['base']}/"))


def test_the_cd_diagram_puts_rank_1_on_the_left():
    """docs/collapse-statistics.md:81-82: "The rank axis puts rank 1 on the left (Demšar's
    convention)": the axis label 1 and the best method's name lie left of the worst's."""
    from imprint.analysis.stats import critical_difference
    from imprint.figures.cd_diagram import plot_cd_diagram

    rows = [
        {"method": name, "dataset": f"d{v}", "accuracy": 50.0 + 10 * strength + v}
        for v in range(8)
        for name, strength in (("best", 2), ("middle", 1), ("worst", 0))
    ]
    fig = plot_cd_diagram(critical_difference(pd.DataFrame(rows), "method", "accuracy", "dataset"))
    x = {t.get_text(): t.get_position()[0] for ax in fig.axes for t in ax.texts}
    assert x["1"] < x["2"] < x["3"]
    assert x["best"] < x["worst"]


def test_a_joined_dataset_offsets_labels_by_ten_per_source_and_ids_by_two_to_the_40(tmp_path):
    """docs/configuration.md:30-31: "With several sources the labels of the j-th are offset
    by 10·j, as CombiDigits joins MNIST, MNIST-M, USPS and SVHN"; docs/model-choice.md:150-151:
    "a joined dataset keeps its sources' ids apart by a 2⁴⁰ shift"."""
    from imprint.api.data import join_embeddings
    from imprint.io import load_embeddings, save_embeddings
    from imprint.planning.mappings import dataset_classes

    combidigits = {"sources": ["MNIST", "MNIST-M", "USPS", "SVHN"]}
    classes = dataset_classes({"datasets": {"CombiDigits": combidigits}}, "CombiDigits")
    assert classes == [c + 10 * j for j in range(4) for c in range(10)]

    rng = np.random.default_rng(2)
    parts = []
    for j in range(3):
        parts.append(tmp_path / f"part{j}")
        y = np.arange(6) % 3
        meta = {"backbone": "b", "dataset": f"s{j}", "split": "train"}
        save_embeddings(
            parts[-1], rng.standard_normal((6, 4)).astype(np.float32), y, meta, ids=np.arange(6)
        )
    join_embeddings(parts, tmp_path / "joined", [0, 10, 20], "joined")
    joined = load_embeddings(tmp_path / "joined")
    np.testing.assert_array_equal(
        joined.labels, np.r_[[c + 10 * j for j in range(3) for c in np.arange(6) % 3]]
    )
    np.testing.assert_array_equal(
        joined.ids, np.r_[[i + j * 2**40 for j in range(3) for i in range(6)]]
    )
