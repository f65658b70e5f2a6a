"""The figure registry: every kind of planning.figure_kinds drawable by its module's `draw`,
an unknown kind refused, and every output a kind names made."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

from imprint.figures.registry import draw_function
from imprint.planning.figure_kinds import FIGURE_KINDS


@pytest.mark.parametrize("name", list(FIGURE_KINDS))
def test_every_kind_has_a_draw_function_taking_its_inputs(name):
    draw = importlib.import_module(f"imprint.figures.{name}").draw
    assert draw_function(name) is draw
    params = inspect.signature(draw).parameters
    assert set(FIGURE_KINDS[name].inputs) <= set(params) and "experiment" in params


def test_an_unknown_figure_kind_has_no_drawing_and_the_error_names_the_known_ones():
    known = ", ".join(FIGURE_KINDS)
    message = f"unknown figure kind 'cd_diagam' (known: {known})"
    with pytest.raises(ValueError, match=re.escape(message)):
        draw_function("cd_diagam")


def test_every_output_must_be_made(tmp_path):
    from imprint.outputs import write_outputs

    write_outputs({"summary": "text\n"}, {"summary": tmp_path / "s.txt"})
    assert (tmp_path / "s.txt").read_text() == "text\n"
    with pytest.raises(ValueError, match="output 'ranks'"):
        write_outputs({"summary": "text\n"}, {"ranks": tmp_path / "r.csv"})
    assert not (tmp_path / "r.csv").exists()
