"""The figure registry: every kind drawable, its files those the workflow always wrote, an
unknown kind refused at planning, and nothing heavy imported to read it."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

from imprint.figures.registry import FIGURE_KINDS, check_figure_kinds
from imprint.planning.errors import ConfigError

REPORT = Path(__file__).resolve().parents[2] / "workflow/report"

# The files each kind wrote before the registry (rules/common.smk's hand-written table and the
# rules' outputs): the registry must keep every path.
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


def test_the_registry_writes_the_files_the_workflow_always_wrote():
    got = {
        name: sorted(o.path for o in kind.outputs.values()) for name, kind in FIGURE_KINDS.items()
    }
    assert got == {name: sorted(paths) for name, paths in FILES.items()}


@pytest.mark.parametrize("name", list(FIGURE_KINDS))
def test_every_kind_has_a_draw_function_taking_its_inputs(name):
    kind = FIGURE_KINDS[name]
    draw = importlib.import_module(kind.module).draw
    assert kind.draw_function() is draw
    params = inspect.signature(draw).parameters
    assert set(kind.inputs) <= set(params) and "experiment" in params
    assert kind.rule == ("rank_configurations" if name == "cd_diagram" else f"plot_{name}")
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


def test_the_registry_imports_neither_matplotlib_nor_torch():
    # Planning (rules/common.smk, figures.smk) reads it on every `snakemake -n`.
    code = (
        "import sys\n"
        "import imprint.figures.registry\n"
        "heavy = {'torch', 'matplotlib', 'sklearn', 'scipy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_output_must_be_made(tmp_path):
    from imprint.outputs import write_outputs

    write_outputs({"summary": "text\n"}, {"summary": tmp_path / "s.txt"})
    assert (tmp_path / "s.txt").read_text() == "text\n"
    with pytest.raises(ValueError, match="output 'ranks'"):
        write_outputs({"summary": "text\n"}, {"ranks": tmp_path / "r.csv"})
    assert not (tmp_path / "r.csv").exists()
