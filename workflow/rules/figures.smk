# Figures and tables of each experiment, each marked for `snakemake --report`: one rule per
# figure kind of imprint.planning.figure_kinds (rank_configurations for cd_diagram, plot_<kind>
# for the others), each drawn by scripts/draw_figure.py; a job per experiment listing the kind.
from imprint.planning.figure_kinds import FIGURE_KINDS

for kind in FIGURE_KINDS.values():

    rule:
        name:
            kind.rule
        input:
            **kind.inputs,
        output:
            **{
                name: (
                    report(
                        out.path,
                        caption=f"../report/{out.caption}",
                        category=kind.category,
                        subcategory=kind.subcategory,
                        labels=out.labels,
                    )
                    if out.caption
                    else out.path
                )
                for name, out in kind.outputs.items()
            },
        log:
            kind.log,
        conda:
            "../../envs/imprint.yaml"
        params:
            kind=kind.name,
            options=lookup(
                dpath=f"experiments/{{experiment}}/figure_options/{kind.name}",
                within=config,
                default={},
            ),
        script:
            "../scripts/draw_figure.py"


rule plot_collapse:
    input:
        collapse=paths.COLLAPSE_TABLE,
    output:
        nc1_pdf=report(
            paths.COLLAPSE_FIGURE.format(ext="pdf"),
            caption="../report/collapse.rst",
            category="Neural collapse",
            labels={"figure": "NC1 and VCI", "format": "pdf"},
        ),
        nc1_png=report(
            paths.COLLAPSE_FIGURE.format(ext="png"),
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
