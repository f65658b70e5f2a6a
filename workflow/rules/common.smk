# Config validation, wildcard constraints and input functions. No rules here.
import re

from snakemake.utils import validate

from imprint.data.selections import LABEL_OFFSET
from imprint.planning import jobs, paths
from imprint.planning.batches import SEP, experiment_batches
from imprint.planning.checks import check_config, validate_config
from imprint.planning.dataset_checks import own_datasets, own_source
from imprint.planning.figure_kinds import FIGURE_KINDS
from imprint.planning.jobs import (
    collapse_groups,
    model_choice_groups,
    similarity_sets,
    stitching_sets,
)
from imprint.planning.mappings import expand_mappings, resolve_classes

validate_config(config, workflow.source_path("../schemas/config.schema.yaml"))
validate(config, "../schemas/config.schema.yaml")  # fills in the defaults
check_config(config)

MAPPINGS = expand_mappings(config["mappings"])
SINGLE_SOURCE = [
    d for d, spec in config["datasets"].items() if len(spec["sources"]) == 1
]
JOINED = [d for d, spec in config["datasets"].items() if len(spec["sources"]) > 1]
SOURCES = sorted({s for spec in config["datasets"].values() for s in spec["sources"]})
# Backbones that bring their own embedding files (`embeddings:`) and those extracted here.
IMPORTED = [b for b, spec in config["backbones"].items() if spec.get("embeddings")]
# Backbones made of others' embeddings of the same images (`concat:`), joined here.
CONCAT = [b for b, spec in config["backbones"].items() if spec.get("concat")]
EXTRACTED = [b for b in config["backbones"] if b not in IMPORTED and b not in CONCAT]
TABLE1 = config.get("table1", {}).get("experiments", [])
USES_LS = {e: jobs.uses_ls(config, e) for e in config["experiments"]}
USES_TEXT = {e: jobs.uses_text(config, e) for e in config["experiments"]}
# Imprinting jobs: small groups of one (experiment, dataset, backbone) share a job and its
# start-up (planning/batches.py); a batch's mapping and task wildcards hold '+'-joined names.
BATCHES = {e: experiment_batches(config, e) for e in config["experiments"]}
MODEL_CHOICE = model_choice_groups(
    config
)  # (experiment, dataset, backbone, mapping, task)
SIMILARITY_SETS = similarity_sets(config)  # {dataset: backbones}
STITCHING_SETS = stitching_sets(config)  # {dataset: backbones}, every ordered pair


def alternation(names):
    """A regex matching exactly one of the names (wildcards never swallow a '/')."""
    return (
        "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) or "(?!)"
    )


def joined(names):
    """A regex matching one or more of the names joined by SEP (a batch's wildcard)."""
    one = f"(?:{alternation(names)})"
    return f"{one}(?:{re.escape(SEP)}{one})*"


wildcard_constraints:
    dataset=alternation(config["datasets"]),
    source=alternation(SOURCES),
    backbone=alternation(config["backbones"]),
    mapping=alternation(MAPPINGS),
    task=alternation(config["tasks"]),
    experiment=alternation(config["experiments"]),
    split="train|test",


def get_embeddings(wildcards):
    return {
        split: paths.embedding_files(
            paths.EMBEDDINGS.format(
                dataset=wildcards.dataset, backbone=wildcards.backbone, split=split
            )
        )
        for split in ("train", "test")
    }


def get_text_proxies(wildcards):
    """The text proxies an imprinting job reads where its grid has GEN text or text_mean."""
    if not USES_TEXT[wildcards.experiment]:
        return []
    return paths.embedding_files(
        paths.TEXT_PROXIES.format(
            dataset=wildcards.dataset, backbone=wildcards.backbone
        )
    )


def get_train_embeddings(wildcards):
    return get_embeddings(wildcards)["train"]


def get_source_embeddings(wildcards):
    return [
        file
        for path in jobs.source_embeddings(config, wildcards.dataset)
        for file in paths.embedding_files(
            path.format(backbone=wildcards.backbone, split=wildcards.split)
        )
    ]


def get_imported_embeddings(wildcards):
    return jobs.imported_embeddings(
        config, wildcards.dataset, wildcards.backbone, wildcards.split
    )


def get_extraction_source(wildcards):
    """The registry dataset a single-source dataset (or a joined dataset's part) reads."""
    if "dataset" in wildcards.keys():
        return config["datasets"][wildcards.dataset]["sources"][0]
    return wildcards.source


def get_dataset_manifest(wildcards):
    return paths.DATASET_MANIFEST.format(source=get_extraction_source(wildcards))


def get_download_flag(wildcards):
    """Download a source unless every dataset that uses it says download: false."""
    return any(
        spec["download"]
        for spec in config["datasets"].values()
        if wildcards.source in spec["sources"]
    )


def get_dataset_classes(wildcards):
    if "dataset" in wildcards.keys():
        return resolve_classes(config["datasets"][wildcards.dataset]["classes"])
    return None


def get_source_classes(wildcards):
    """The classes any dataset reads from this source; None where one reads them all.

    So preparing ImageNet lists only the paper's class folders, not all 1000.
    """
    wanted = set()
    for spec in config["datasets"].values():
        if wildcards.source in spec["sources"]:
            classes = resolve_classes(spec["classes"])
            if classes is None:
                return None
            wanted |= set(classes)
    return sorted(wanted)


def get_backbone_options(wildcards):
    # Only what extraction reads: ls_lambda (an imprinting setting) must not rerun extractions.
    # The config's key order is kept: Snakemake compares parameters by their repr.
    spec = config["backbones"][wildcards.backbone]
    return {
        k: v
        for k, v in spec.items()
        if k in ("weights", "image_size", "model", "pool", "layers")
    }


def get_own_source(wildcards):
    # A dataset of your own images: its image_folder or hf spec, as build_dataset takes it.
    return own_source(config, wildcards.dataset)


def get_extraction_options(wildcards):
    # batch_size sets speed, not results: the script reads it from the config, so changing it
    # (a smaller GPU) does not rerun every extraction as a changed parameter would.
    return {k: v for k, v in config["extraction"].items() if k != "batch_size"}


def get_concat_parts(wildcards):
    return [
        file
        for part in config["backbones"][wildcards.backbone]["concat"]
        for file in paths.embedding_files(
            paths.EMBEDDINGS.format(
                dataset=wildcards.dataset, backbone=part, split=wildcards.split
            )
        )
    ]


def get_mapping(wildcards):
    return MAPPINGS[wildcards.mapping]


def get_batch_groups(wildcards):
    """The (mapping, task) groups of an imprinting job, with each mapping and task's classes."""
    return [
        {"name": m, "mapping": MAPPINGS[m], "task": t, "classes": config["tasks"][t]}
        for m in wildcards.mapping.split(SEP)
        for t in wildcards.task.split(SEP)
    ]


def get_label_offsets(wildcards):
    n = len(config["datasets"][wildcards.dataset]["sources"])
    return [LABEL_OFFSET * j for j in range(n)]


def get_grid(wildcards):
    return config["experiments"][wildcards.experiment]["grid"]


# Only grids with GEN ls/kls carry λ and the precision as parameters, so changing either
# reruns those jobs alone.
def get_ls_lambda(wildcards):
    if USES_LS[wildcards.experiment]:
        return jobs.ls_lambda(config, wildcards.backbone)
    return None


def get_ls_precision(wildcards):
    return jobs.ls_precision(config) if USES_LS[wildcards.experiment] else None


def get_grid_file(wildcards):
    grid = get_grid(wildcards)
    if isinstance(grid, str) and not grid.startswith("paper:"):
        return grid
    return []


def get_experiment_tables(wildcards):
    return [b.path() for b in BATCHES[wildcards.experiment]]


def get_collapse_groups(wildcards):
    return [list(group) for group in collapse_groups(config)]


def get_collapse_files(wildcards):
    return [
        paths.COLLAPSE_METRICS.format(dataset=d, backbone=b, mapping=m)
        for d, b, m in collapse_groups(config)
    ]


def get_transferability_groups(wildcards):
    return [[g.dataset, g.backbone, g.mapping, g.task] for g in MODEL_CHOICE]


def get_transferability_files(wildcards):
    return [
        paths.TRANSFERABILITY.format(
            dataset=g.dataset, backbone=g.backbone, mapping=g.mapping, task=g.task
        )
        for g in MODEL_CHOICE
    ]


def get_model_choice_results(wildcards):
    return [
        paths.EXPERIMENT_TABLE.format(experiment=name)
        for name in config["model_choice"]["experiments"]
    ]


def embedding_set_files(dataset, backbones, split):
    """The files of each backbone's embedding set of one split of a dataset."""
    return [
        file
        for backbone in backbones
        for file in paths.embedding_files(
            paths.EMBEDDINGS.format(dataset=dataset, backbone=backbone, split=split)
        )
    ]


def get_similarity_embeddings(wildcards):
    return embedding_set_files(
        wildcards.dataset, SIMILARITY_SETS[wildcards.dataset], "test"
    )


def get_similarity_tables(wildcards):
    return [paths.SIMILARITY.format(dataset=d) for d in SIMILARITY_SETS]


def get_stitching_embeddings(wildcards):
    """Each backbone's training and test embeddings of the dataset, by split."""
    backbones = STITCHING_SETS[wildcards.dataset]
    return {
        split: embedding_set_files(wildcards.dataset, backbones, split)
        for split in ("train", "test")
    }


def get_stitching_tables(wildcards):
    tables = {"stitching": [paths.STITCHING.format(dataset=d) for d in STITCHING_SETS]}
    tables["ranks"] = [paths.STITCHING_RANKS.format(dataset=d) for d in STITCHING_SETS]
    tables["similarity"] = [
        paths.SIMILARITY.format(dataset=d)
        for d in STITCHING_SETS
        if d in SIMILARITY_SETS
    ]
    return tables


def get_table1_inputs(wildcards):
    return [paths.EXPERIMENT_TABLE.format(experiment=name) for name in TABLE1]


def get_embedding_targets():
    pairs = {
        (d, b)
        for exp in config["experiments"].values()
        for d in exp["datasets"]
        for b in exp["backbones"]
    }
    pairs |= {(d, b) for d, b, _ in collapse_groups(config)}
    return [
        file
        for d, b in sorted(pairs)
        for s in ("train", "test")
        for file in paths.embedding_files(
            paths.EMBEDDINGS.format(dataset=d, backbone=b, split=s)
        )
    ]


def get_results_tables():
    # The per-job tables are targets too, so deleting one reruns its job (Snakemake leaves a
    # missing intermediate alone while everything built from it is up to date).
    return [b.path() for name in config["experiments"] for b in BATCHES[name]] + [
        paths.EXPERIMENT_TABLE.format(experiment=name) for name in config["experiments"]
    ]


def get_figure_targets():
    # Each kind's files come from planning.figure_kinds (which also makes the figure rules).
    targets = [
        out.path.format(experiment=name)
        for name, exp in config["experiments"].items()
        for kind in exp["figures"]
        for out in FIGURE_KINDS[kind].outputs.values()
    ]
    if TABLE1:
        targets += [paths.TABLE1.format(ext=ext) for ext in ("csv", "md", "tex")]
    if collapse_groups(config):
        targets += [paths.COLLAPSE_FIGURE.format(ext=ext) for ext in ("pdf", "png")]
        targets.append(paths.COLLAPSE_TABLE)
    if MODEL_CHOICE:
        targets += [paths.TRANSFERABILITY_FIGURE.format(ext=e) for e in ("pdf", "png")]
        targets += [paths.TRANSFERABILITY_TABLE, paths.TRANSFERABILITY_AGREEMENT]
    if SIMILARITY_SETS:
        targets += [paths.SIMILARITY_FIGURE.format(ext=e) for e in ("pdf", "png")]
    if STITCHING_SETS:
        targets += [
            path.format(ext=e)
            for path in (paths.STITCHING_FIGURE, paths.STITCHING_RANKS_FIGURE)
            for e in ("pdf", "png")
        ]
    return targets


def get_all_targets():
    return get_results_tables() + get_figure_targets()
