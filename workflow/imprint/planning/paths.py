"""Every results path template of the workflow, in one place (rules, planning and api use them).

Wildcards in braces are Snakemake's; `.format(...)` fills them for a concrete job.
"""

from pathlib import Path

from imprint.io import EMBEDDING_FILES

RESULTS_DIR = "results"  # every path below is in it: Snakemake's, never a user's own files
SOURCES_DIR = "sources"  # results/embeddings/sources/<source>: the parts of a joined dataset

DATASET_MANIFEST = "results/datasets/{source}.json"
EMBEDDINGS = "results/embeddings/{dataset}/{backbone}/{split}"
# A CLIP-like backbone's text proxies of a dataset's classes (an embedding set, a row a class).
TEXT_PROXIES = "results/text_proxies/{dataset}/{backbone}"
SOURCE_EMBEDDINGS = f"results/embeddings/{SOURCES_DIR}/{{source}}/{{backbone}}/{{split}}"
GROUP_TABLE = "results/imprint/{experiment}/{dataset}/{backbone}/{mapping}/{task}.parquet"
EXPERIMENT_TABLE = "results/imprint/{experiment}.parquet"
COLLAPSE_METRICS = "results/collapse/{dataset}/{backbone}/{mapping}.json"
COLLAPSE_TABLE = "results/collapse/collapse.csv"
COLLAPSE_FIGURE = "results/figures/collapse/nc1.{ext}"
TABLE1 = "results/tables/table1.{ext}"
# Which foundation model for a task (not in the paper): estimates per group, their agreement
# with the accuracies achieved, and representation similarity per dataset.
TRANSFERABILITY = "results/model_choice/transferability/{dataset}/{backbone}/{mapping}/{task}.json"
TRANSFERABILITY_TABLE = "results/model_choice/transferability.csv"
TRANSFERABILITY_AGREEMENT = "results/model_choice/transferability_agreement.csv"
TRANSFERABILITY_FIGURE = "results/figures/model_choice/transferability.{ext}"
SIMILARITY = "results/model_choice/similarity/{dataset}.csv"
SIMILARITY_FIGURE = "results/figures/model_choice/similarity.{ext}"
STITCHING = "results/model_choice/stitching/{dataset}.csv"
STITCHING_RANKS = "results/model_choice/stitching/{dataset}_ranks.csv"
STITCHING_FIGURE = "results/figures/model_choice/stitching.{ext}"
STITCHING_RANKS_FIGURE = "results/figures/model_choice/stitching_ranks.{ext}"


def embedding_files(directory: str) -> list[str]:
    """An embedding set's files: the rules name them, not the directory, so Snakemake sees a
    changed or deleted array (its modification time) and reruns what was built from it."""
    return [f"{directory}/{name}" for name in EMBEDDING_FILES]


def embedding_dirs(files) -> list[str]:
    """The embedding directories behind a rule's input or output files (lists of
    embedding_files), in order; one named twice is listed twice (a joined dataset may join
    one source with itself)."""
    return [str(Path(f).parent) for f in files if Path(f).name == EMBEDDING_FILES[0]]
