"""Every results path template of the workflow, in one place (rules, planning and api use them).

Wildcards in braces are Snakemake's; `.format(...)` fills them for a concrete job.
"""

SOURCES_DIR = "sources"  # results/embeddings/sources/<source>: the parts of a joined dataset

DATASET_MANIFEST = "results/datasets/{source}.json"
EMBEDDINGS = "results/embeddings/{dataset}/{backbone}/{split}"
SOURCE_EMBEDDINGS = f"results/embeddings/{SOURCES_DIR}/{{source}}/{{backbone}}/{{split}}"
GROUP_TABLE = "results/imprint/{experiment}/{dataset}/{backbone}/{mapping}/{task}.parquet"
EXPERIMENT_TABLE = "results/imprint/{experiment}.parquet"
COLLAPSE_METRICS = "results/collapse/{dataset}/{backbone}/{mapping}.json"
COLLAPSE_TABLE = "results/collapse/collapse.csv"
COLLAPSE_FIGURE = "results/figures/collapse/nc1.{ext}"
TABLE1 = "results/tables/table1.{ext}"
