"""The figure kinds planning reads: their files those the workflow always wrote, their rules,
captions and report labels, an unknown kind refused at planning, and nothing heavy imported."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from imprint.planning.errors import ConfigError
from imprint.planning.figure_kinds import FIGURE_KINDS, check_figure_kinds

REPORT = Path(__file__).resolve().parents[2] / "workflow/report"

# The files each kind wrote before the kinds were a table (rules/common.smk's hand-written
# table and the rules' outputs): the table must keep every path.
FILES = {
    "cd_diagram": [
        "results/figures/{experiment}/cd_diagram.pdf",
        "results/figures/{experiment}/cd_diagram.png",
        "results/stats/{experiment}/ranks.csv",
        "results/stats/{experiment}/pvalues.csv",
        "results/stats/{experiment}/summary.txt",
    ],
    "accuracy_overview": [
        "results/figures/{experiment}/accuracy_overview.pdf",
        "results/figures/{experiment}/accuracy_overview.png",
    ],
    "accuracy_vs_proxies": [
        "results/figures/{experiment}/accuracy_vs_proxies.pdf",
        "results/figures/{experiment}/accuracy_vs_proxies.png",
    ],
    "fewshot_curves": [
        "results/figures/{experiment}/fewshot_curves.pdf",
        "results/figures/{experiment}/fewshot_curves.png",
    ],
    "incremental_curves": [
        "results/figures/{experiment}/incremental_curves.pdf",
        "results/figures/{experiment}/incremental_curves.png",
        "results/tables/{experiment}/best_incremental.csv",
        "results/tables/{experiment}/last_session.csv",
    ],
    "multimodal": [
        "results/figures/{experiment}/multimodal.pdf",
        "results/figures/{experiment}/multimodal.png",
        "results/tables/{experiment}/best_k.csv",
        "results/figures/{experiment}/accuracy_vs_merged.pdf",
        "results/figures/{experiment}/accuracy_vs_merged.png",
        "results/tables/{experiment}/accuracy_vs_merged.csv",
    ],
    "nc1_vs_gain": [
        "results/figures/{experiment}/nc1_vs_gain.pdf",
        "results/figures/{experiment}/nc1_vs_gain.png",
        "results/tables/{experiment}/nc1_vs_gain.csv",
    ],
}


def test_the_kinds_write_the_files_the_workflow_always_wrote():
    got = {
        name: sorted(o.path for o in kind.outputs.values()) for name, kind in FIGURE_KINDS.items()
    }
    assert got == {name: sorted(paths) for name, paths in FILES.items()}


@pytest.mark.parametrize("name", list(FIGURE_KINDS))
def test_every_kind_has_its_rule_and_a_captioned_pdf_and_png_per_figure(name):
    kind = FIGURE_KINDS[name]
    assert kind.rule == ("rank_configurations" if name == "cd_diagram" else f"plot_{name}")
    assert kind.log == f"logs/{kind.rule}/{{experiment}}.log"
    # A figure made as X is written to the outputs X_pdf and X_png, beside each other.
    for out_name, out in kind.outputs.items():
        if out.path.endswith((".pdf", ".png")):
            assert out_name == f"{Path(out.path).stem}_{out.path[-3:]}"
            assert (REPORT / out.caption).is_file(), out.caption
            assert out.labels["format"] == out.path[-3:]


def test_an_unknown_figure_kind_is_refused_naming_it_and_the_known_ones():
    config = {"experiments": {"a": {"figures": ["cd_diagram"]}, "b": {"figures": ["cd_diagam"]}}}
    known = ", ".join(FIGURE_KINDS)
    message = f"experiments.b.figures: unknown figure kind 'cd_diagam' (known: {known})"
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_figure_kinds(config)
    check_figure_kinds({"experiments": {"a": {"figures": list(FIGURE_KINDS)}, "c": {}}})
