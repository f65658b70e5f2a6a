# Neural collapse: NC1, VCI and friends of L2-normalised training embeddings.


rule compute_collapse:
    input:
        embeddings="results/embeddings/{dataset}/{backbone}/train",
    output:
        "results/collapse/{dataset}/{backbone}/{mapping}.json",
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
        "results/collapse/collapse.csv",
    log:
        "logs/gather_collapse.log",
    conda:
        "../../envs/imprint.yaml"
    script:
        "../scripts/gather_tables.py"
