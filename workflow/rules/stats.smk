# Statistics over the results tables: the paper's Table 1 (seed medians of five named methods).
# The critical-difference statistics (rule rank_configurations) are the cd_diagram figure kind,
# made with the other kinds in figures.smk.


rule summarise_table1:
    input:
        get_table1_inputs,
    output:
        csv=report(
            paths.TABLE1.format(ext="csv"),
            caption="../report/table1.rst",
            category="Tables",
            labels={"table": "Table 1"},
        ),
        md=paths.TABLE1.format(ext="md"),
        tex=paths.TABLE1.format(ext="tex"),
    log:
        "logs/summarise_table1.log",
    conda:
        "../../envs/imprint.yaml"
    script:
        "../scripts/summarise_table1.py"
