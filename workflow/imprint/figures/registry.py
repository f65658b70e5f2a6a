"""The drawing of each figure kind of imprint.planning.figure_kinds: the `draw` function of its
module imprint.figures.<kind>, imported only when a figure is drawn (planning reads the kinds
without matplotlib)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from imprint.planning import figure_kinds

__all__ = ["draw_function"]


def draw_function(kind: str) -> Callable[..., dict]:
    """The `draw` of figure kind `kind`, imported now (with matplotlib); an unknown kind is
    refused naming the known ones."""
    if kind not in figure_kinds.FIGURE_KINDS:
        known = ", ".join(figure_kinds.FIGURE_KINDS)
        raise ValueError(f"unknown figure kind '{kind}' (known: {known})")
    return importlib.import_module(f"{__package__}.{kind}").draw
