# Statistics: seed medians, ranks per group, Friedman, pairwise Wilcoxon-Holm, cliques.


rule rank_configurations:
    input:
        "results/imprint/{experiment}.parquet",
    output:
        ranks="results/stats/{experiment}/ranks.csv",
        pvalues="results/stats/{experiment}/pvalues.csv",
        summary="results/stats/{experiment}/summary.txt",
        pdf=report(
            "results/figures/{experiment}/cd_diagram.pdf",
            caption="../report/cd_diagram.rst",
            category="Critical differences",
            labels={"experiment": "{experiment}", "format": "pdf"},
        ),
        png=report(
            "results/figures/{experiment}/cd_diagram.png",
            caption="../report/cd_diagram.rst",
            category="Critical differences",
            labels={"experiment": "{experiment}", "format": "png"},
        ),
    log:
        "logs/rank_configurations/{experiment}.log",
    conda:
        "../../envs/imprint.yaml"
    params:
        options=get_cd_diagram_options,
    script:
        "../scripts/rank_configurations.py"
