# Which foundation model for a task (not in the paper): transferability estimates per group of
# one experiment, their agreement with the accuracies it achieved, and representation
# similarity (linear CKA) per dataset.


rule compute_transferability:
    input:
        embeddings=paths.embedding_files(paths.EMBEDDINGS.replace("{split}", "train")),
    output:
        paths.TRANSFERABILITY,
    log:
        "logs/compute_transferability/{dataset}/{backbone}/{mapping}/{task}.log",
    benchmark:
        "benchmarks/compute_transferability/{dataset}/{backbone}/{mapping}/{task}.tsv"
    conda:
        "../../envs/imprint.yaml"
    params:
        mapping=get_mapping,
        classes=lambda wildcards: config["tasks"][wildcards.task],
    script:
        "../scripts/compute_transferability.py"


rule gather_transferability:
    input:
        estimates=get_transferability_files,
        results=get_model_choice_results,
    output:
        table=report(
            paths.TRANSFERABILITY_TABLE,
            caption="../report/transferability_table.rst",
            category="Model choice (not in the paper)",
            labels={"table": "transferability estimates"},
        ),
        agreement=report(
            paths.TRANSFERABILITY_AGREEMENT,
            caption="../report/transferability_agreement.rst",
            category="Model choice (not in the paper)",
            labels={"table": "estimator agreement (weighted Kendall τ)"},
        ),
    log:
        "logs/gather_transferability.log",
    conda:
        "../../envs/imprint.yaml"
    params:
        groups=get_transferability_groups,
    script:
        "../scripts/gather_transferability.py"


rule plot_transferability:
    input:
        transferability=paths.TRANSFERABILITY_TABLE,
        agreement=paths.TRANSFERABILITY_AGREEMENT,
    output:
        transferability_pdf=report(
            paths.TRANSFERABILITY_FIGURE.format(ext="pdf"),
            caption="../report/transferability.rst",
            category="Model choice (not in the paper)",
            labels={"figure": "transferability", "format": "pdf"},
        ),
        transferability_png=report(
            paths.TRANSFERABILITY_FIGURE.format(ext="png"),
            caption="../report/transferability.rst",
            category="Model choice (not in the paper)",
            labels={"figure": "transferability", "format": "png"},
        ),
    log:
        "logs/plot_transferability.log",
    conda:
        "../../envs/imprint.yaml"
    params:
        kind="transferability",
    script:
        "../scripts/plot_model_choice.py"


rule compute_similarity:
    input:
        get_similarity_embeddings,
    output:
        report(
            paths.SIMILARITY,
            caption="../report/similarity_table.rst",
            category="Model choice (not in the paper)",
            labels={"table": "linear CKA", "dataset": "{dataset}"},
        ),
    log:
        "logs/compute_similarity/{dataset}.log",
    benchmark:
        "benchmarks/compute_similarity/{dataset}.tsv"
    conda:
        "../../envs/imprint.yaml"
    params:
        backbones=lambda wildcards: SIMILARITY_SETS[wildcards.dataset],
    script:
        "../scripts/compute_similarity.py"


rule plot_similarity:
    input:
        similarity=get_similarity_tables,
    output:
        similarity_pdf=report(
            paths.SIMILARITY_FIGURE.format(ext="pdf"),
            caption="../report/similarity.rst",
            category="Model choice (not in the paper)",
            labels={"figure": "similarity (CKA)", "format": "pdf"},
        ),
        similarity_png=report(
            paths.SIMILARITY_FIGURE.format(ext="png"),
            caption="../report/similarity.rst",
            category="Model choice (not in the paper)",
            labels={"figure": "similarity (CKA)", "format": "png"},
        ),
    log:
        "logs/plot_similarity.log",
    conda:
        "../../envs/imprint.yaml"
    params:
        kind="similarity",
    script:
        "../scripts/plot_model_choice.py"


# Can one backbone stand in for another? Every ordered pair stitched per dataset.
rule compute_stitching:
    input:
        unpack(get_stitching_embeddings),
    output:
        table=report(
            paths.STITCHING,
            caption="../report/stitching_table.rst",
            category="Model choice (not in the paper)",
            labels={"table": "stitching", "dataset": "{dataset}"},
        ),
        ranks=paths.STITCHING_RANKS,
    log:
        "logs/compute_stitching/{dataset}.log",
    benchmark:
        "benchmarks/compute_stitching/{dataset}.tsv"
    conda:
        "../../envs/imprint.yaml"
    threads: 2
    params:
        backbones=lambda wildcards: STITCHING_SETS[wildcards.dataset],
        options=lambda wildcards: config["model_choice"]["stitching"],
    script:
        "../scripts/compute_stitching.py"


rule plot_stitching:
    input:
        unpack(get_stitching_tables),
    output:
        stitching_pdf=report(
            paths.STITCHING_FIGURE.format(ext="pdf"),
            caption="../report/stitching.rst",
            category="Model choice (not in the paper)",
            labels={"figure": "stitching", "format": "pdf"},
        ),
        stitching_png=report(
            paths.STITCHING_FIGURE.format(ext="png"),
            caption="../report/stitching.rst",
            category="Model choice (not in the paper)",
            labels={"figure": "stitching", "format": "png"},
        ),
        stitching_ranks_pdf=report(
            paths.STITCHING_RANKS_FIGURE.format(ext="pdf"),
            caption="../report/stitching_ranks.rst",
            category="Model choice (not in the paper)",
            labels={"figure": "stitching by rank", "format": "pdf"},
        ),
        stitching_ranks_png=report(
            paths.STITCHING_RANKS_FIGURE.format(ext="png"),
            caption="../report/stitching_ranks.rst",
            category="Model choice (not in the paper)",
            labels={"figure": "stitching by rank", "format": "png"},
        ),
    log:
        "logs/plot_stitching.log",
    conda:
        "../../envs/imprint.yaml"
    params:
        kind="stitching",
    script:
        "../scripts/plot_model_choice.py"
