# Weight imprinting on frozen embeddings, from datasets to the paper's figures.
# Run: snakemake --cores N   (targets: all, embeddings, results_tables, paper_figures)
from snakemake.utils import min_version

min_version("9.0")


from imprint.planning.checks import check_yaml_file

# Every config file is read strictly first: Snakemake's own reading names no line for a YAML
# error and keeps the last of a key given twice.
check_yaml_file(*(workflow.overwrite_configfiles or ["config.yaml"]))


# config.yaml is the default; a file given with --configfile replaces it rather than being
# deep-merged into it (the quickstart's experiments must not leak into the paper config).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/embed.smk"
include: "workflow/rules/imprint.smk"
include: "workflow/rules/collapse.smk"
include: "workflow/rules/model_choice.smk"
include: "workflow/rules/stats.smk"
include: "workflow/rules/figures.smk"


rule all:
    default_target: True
    input:
        get_all_targets(),


rule embeddings:
    input:
        get_embedding_targets(),


rule results_tables:
    input:
        get_results_tables(),


rule paper_figures:
    input:
        get_figure_targets(),
