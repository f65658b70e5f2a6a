# Figures and tables, each marked for `snakemake --report`.


rule plot_results:
    input:
        "results/imprint/{experiment}.parquet",
    output:
        pdf=report(
            "results/figures/{experiment}/{figure}.pdf",
            caption="../report/plot_results.rst",
            category="Figures",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "figure": "{figure}",
                "format": "pdf",
            },
        ),
        png=report(
            "results/figures/{experiment}/{figure}.png",
            caption="../report/plot_results.rst",
            category="Figures",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "figure": "{figure}",
                "format": "png",
            },
        ),
    log:
        "logs/plot_results/{experiment}/{figure}.log",
    wildcard_constraints:
        figure="accuracy_overview|accuracy_vs_proxies|fewshot_curves",
    conda:
        "../../envs/imprint.yaml"
    script:
        "../scripts/plot_results.py"


rule plot_multimodal:
    input:
        "results/imprint/{experiment}.parquet",
    output:
        pdf=report(
            "results/figures/{experiment}/multimodal.pdf",
            caption="../report/multimodal.rst",
            category="Figures",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "figure": "multimodal",
                "format": "pdf",
            },
        ),
        png=report(
            "results/figures/{experiment}/multimodal.png",
            caption="../report/multimodal.rst",
            category="Figures",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "figure": "multimodal",
                "format": "png",
            },
        ),
        best_k="results/tables/{experiment}/best_k.csv",
        merged_pdf=report(
            "results/figures/{experiment}/accuracy_vs_merged.pdf",
            caption="../report/accuracy_vs_merged.rst",
            category="Figures",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "figure": "accuracy_vs_merged",
                "format": "pdf",
            },
        ),
        merged_png=report(
            "results/figures/{experiment}/accuracy_vs_merged.png",
            caption="../report/accuracy_vs_merged.rst",
            category="Figures",
            subcategory="{experiment}",
            labels={
                "experiment": "{experiment}",
                "figure": "accuracy_vs_merged",
                "format": "png",
            },
        ),
        merged_table="results/tables/{experiment}/accuracy_vs_merged.csv",
    log:
        "logs/plot_multimodal/{experiment}.log",
    conda:
        "../../envs/imprint.yaml"
    script:
        "../scripts/plot_multimodal.py"


rule summarise_table1:
    input:
        get_table1_inputs,
    output:
        csv=report(
            "results/tables/table1.csv",
            caption="../report/table1.rst",
            category="Tables",
            labels={"table": "Table 1"},
        ),
        md="results/tables/table1.md",
        tex="results/tables/table1.tex",
    log:
        "logs/summarise_table1.log",
    conda:
        "../../envs/imprint.yaml"
    script:
        "../scripts/summarise_table1.py"


rule plot_nc1_vs_gain:
    input:
        results="results/imprint/{experiment}.parquet",
        collapse="results/collapse/collapse.csv",
    output:
        pdf=report(
            "results/figures/{experiment}/nc1_vs_gain.pdf",
            caption="../report/nc1_vs_gain.rst",
            category="Neural collapse",
            labels={
                "experiment": "{experiment}",
                "figure": "NC1 vs gain",
                "format": "pdf",
            },
        ),
        png=report(
            "results/figures/{experiment}/nc1_vs_gain.png",
            caption="../report/nc1_vs_gain.rst",
            category="Neural collapse",
            labels={
                "experiment": "{experiment}",
                "figure": "NC1 vs gain",
                "format": "png",
            },
        ),
        pairs="results/tables/{experiment}/nc1_vs_gain.csv",
    log:
        "logs/plot_nc1_vs_gain/{experiment}.log",
    conda:
        "../../envs/imprint.yaml"
    params:
        options=get_nc1_vs_gain_options,
    script:
        "../scripts/plot_nc1_vs_gain.py"


rule plot_collapse:
    input:
        collapse="results/collapse/collapse.csv",
    output:
        pdf=report(
            "results/figures/collapse/nc1.pdf",
            caption="../report/collapse.rst",
            category="Neural collapse",
            labels={"figure": "NC1 and VCI", "format": "pdf"},
        ),
        png=report(
            "results/figures/collapse/nc1.png",
            caption="../report/collapse.rst",
            category="Neural collapse",
            labels={"figure": "NC1 and VCI", "format": "png"},
        ),
    log:
        "logs/plot_collapse.log",
    conda:
        "../../envs/imprint.yaml"
    script:
        "../scripts/plot_collapse.py"
