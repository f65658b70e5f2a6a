"""Every figure kind an experiment's `figures:` may list: the rule that draws it, what it reads
and writes, and how the report shows it.

Adding a kind takes an entry here, a module under imprint/figures with a `draw` function and a
caption under workflow/report; the workflow makes its rule (rules/figures.smk) and its targets
(rules/common.smk) from the entry, and imprint.figures.registry finds its `draw` by the kind's
name. Planning reads this table without matplotlib or torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from imprint.planning import paths
from imprint.planning.errors import ConfigError

__all__ = ["FIGURE_KINDS", "FigureKind", "Output", "check_figure_kinds"]


@dataclass(frozen=True)
class Output:
    """One file a kind writes; with a caption it is shown in the report."""

    path: str
    """Template with the {experiment} wildcard."""
    caption: str | None = None
    """Caption file under workflow/report; None: not in the report."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """The report's labels of the file."""


@dataclass(frozen=True)
class FigureKind:
    """A figure kind: one rule, one job per experiment that lists the kind.

    Its module, imprint.figures.<name>, has `draw(<inputs by name>, experiment=...,
    **figure_options)`, which returns the outputs by name: a Figure (written to the outputs
    <name>_pdf and <name>_png), a table or a text.
    """

    name: str
    outputs: Mapping[str, Output]
    category: str = "Figures"
    """The report's category; figures in 'Figures' are grouped by experiment."""
    inputs: Mapping[str, str] = field(default_factory=lambda: {"results": paths.EXPERIMENT_TABLE})
    rule: str = ""
    """The rule's name; default plot_<name>."""

    def __post_init__(self) -> None:
        if not self.rule:
            object.__setattr__(self, "rule", f"plot_{self.name}")

    @property
    def subcategory(self) -> str | None:
        return "{experiment}" if self.category == "Figures" else None

    @property
    def log(self) -> str:
        return f"logs/{self.rule}/{{experiment}}.log"


def figure(name: str, label: str | None = None) -> dict[str, Output]:
    """The PDF and PNG of one figure, captioned by workflow/report/<name>.rst; the report
    labels them `figure: label` when given."""
    labels = {"experiment": "{experiment}"} | ({"figure": label} if label else {})
    return {
        f"{name}_{ext}": Output(
            f"results/figures/{{experiment}}/{name}.{ext}", f"{name}.rst", labels | {"format": ext}
        )
        for ext in ("pdf", "png")
    }


def table(path: str) -> Output:
    """A table or text file, not in the report."""
    return Output(path)


FIGURE_KINDS: dict[str, FigureKind] = {
    kind.name: kind
    for kind in (
        FigureKind(
            "cd_diagram",
            {
                "ranks": table("results/stats/{experiment}/ranks.csv"),
                "pvalues": table("results/stats/{experiment}/pvalues.csv"),
                "summary": table("results/stats/{experiment}/summary.txt"),
                **figure("cd_diagram"),
            },
            category="Critical differences",
            rule="rank_configurations",
        ),
        FigureKind("accuracy_overview", figure("accuracy_overview", "accuracy_overview")),
        FigureKind("accuracy_vs_proxies", figure("accuracy_vs_proxies", "accuracy_vs_proxies")),
        FigureKind("fewshot_curves", figure("fewshot_curves", "fewshot_curves")),
        FigureKind(
            "incremental_curves",
            {
                **figure("incremental_curves", "incremental_curves"),
                "best_incremental": table("results/tables/{experiment}/best_incremental.csv"),
                "last_session": table("results/tables/{experiment}/last_session.csv"),
            },
        ),
        FigureKind(
            "multimodal",
            {
                **figure("multimodal", "multimodal"),
                "best_k": table("results/tables/{experiment}/best_k.csv"),
                **figure("accuracy_vs_merged", "accuracy_vs_merged"),
                "merged_table": table("results/tables/{experiment}/accuracy_vs_merged.csv"),
            },
        ),
        FigureKind(
            "nc1_vs_gain",
            {
                **figure("nc1_vs_gain", "NC1 vs gain"),
                "pairs": table("results/tables/{experiment}/nc1_vs_gain.csv"),
            },
            category="Neural collapse",
            inputs={"results": paths.EXPERIMENT_TABLE, "collapse": paths.COLLAPSE_TABLE},
        ),
    )
}


def check_figure_kinds(config: dict) -> None:
    """Every experiment's `figures:` names registered kinds (the error lists them)."""
    for name, exp in config["experiments"].items():
        for kind in exp.get("figures", []):
            if kind not in FIGURE_KINDS:
                raise ConfigError(
                    f"experiments.{name}.figures: unknown figure kind '{kind}' (known: "
                    f"{', '.join(FIGURE_KINDS)})"
                )
