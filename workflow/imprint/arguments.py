"""Checks of the numbers a user gives (command-line flags, API arguments): every command runs
the same ones before any work, and each error names the flag and the allowed range."""

from __future__ import annotations

import math
from collections.abc import Sequence


def check_number(
    value,
    name: str,
    *,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    why: str = "",
):
    """`value` as an int or float if it is a finite number in [low, high] ((low, high] with
    `low_open`); else a ValueError naming `name` (e.g. "kNN temperature (--temperature)"),
    the value and the range. `why`: appended to the message (what a value outside means)."""
    if isinstance(value, bool):  # True is an int to Python, not a number a user means
        value = str(value)
    number = _as_integer(value) if integer else _as_float(value)
    kind = "an integer" if integer else "a finite number"
    ok = number is not None and (integer or math.isfinite(number))
    if ok and low is not None:
        ok = number > low if low_open else number >= low
    if ok and high is not None:
        ok = number <= high
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {_shown(low)}")
        if high is not None:
            bounds.append(f"<= {_shown(high)}")
        where = f" {' and '.join(bounds)}" if bounds else ""
        raise ValueError(
            f"{name} must be {kind}{where}, got {value!r}" + (f" ({why})" if why else "")
        )
    return number


def check_numbers(values: Sequence, name: str, **limits) -> list:
    """check_number on each of `values`; at least one, none twice."""
    values = list(values)
    if not values:
        raise ValueError(f"{name}: give at least one value")
    checked = [check_number(v, name, **limits) for v in values]
    repeated = sorted({v for v in checked if checked.count(v) > 1})
    if repeated:
        raise ValueError(f"{name}: {repeated[0]!r} is given twice in {values}")
    return checked


def check_seed(value, name: str = "seed (--seed)") -> int:
    """A seed for numpy's and torch's generators: an integer >= 0."""
    return check_number(value, name, integer=True, low=0)


def _shown(bound: float) -> str:
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def check_ls_lambda(ls_lambda) -> float:
    """λ as a float, if it is a positive finite number (ridge regression needs λ > 0)."""
    value = float(ls_lambda)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"ridge λ (ls_lambda, --ls-lambda) must be a positive finite number, got {ls_lambda!r}"
        )
    return value


def _as_float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _as_integer(value) -> int | None:
    """An int exactly (a whole float such as 3.0 too, but never a rounded 2.5 or 1e30)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) < 2**53 else None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None
