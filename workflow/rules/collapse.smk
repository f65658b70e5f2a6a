# Neural collapse: NC1, VCI and friends of L2-normalised training embeddings.


rule compute_collapse:
    input:
        embeddings=paths.embedding_files(paths.EMBEDDINGS.replace("{split}", "train")),
    output:
        paths.COLLAPSE_METRICS,
    log:
        "logs/compute_collapse/{dataset}/{backbone}/{mapping}.log",
    benchmark:
        "benchmarks/compute_collapse/{dataset}/{backbone}/{mapping}.tsv"
    conda:
        "../../envs/imprint.yaml"
    params:
        mapping=get_mapping,
    script:
        "../scripts/compute_collapse.py"


rule gather_collapse:
    input:
        get_collapse_files,
    output:
        paths.COLLAPSE_TABLE,
    log:
        "logs/gather_collapse.log",
    conda:
        "../../envs/imprint.yaml"
    params:
        groups=get_collapse_groups,
    script:
        "../scripts/gather_collapse.py"
