"""The one check of a figure read from outside: finite, >= 0, an integer below 2^63."""

from __future__ import annotations

import math

import pytest

from servo.core.figure_bounds import (
    BYTES_LIMIT,
    MAX_BYTES,
    NEGATIVE,
    NOT_FINITE,
    OUT_OF_RANGE,
    figure_fault,
)


@pytest.mark.parametrize(
    ("value", "fault"),
    [
        (0, ""),
        (0.0, ""),
        (MAX_BYTES, ""),
        (1e300, ""),
        (BYTES_LIMIT, OUT_OF_RANGE),
        (-BYTES_LIMIT, OUT_OF_RANGE),
        (10**4000, OUT_OF_RANGE),
        (math.inf, NOT_FINITE),
        (-math.inf, NOT_FINITE),
        (math.nan, NOT_FINITE),
        (-1, NEGATIVE),
        (-0.5, NEGATIVE),
    ],
)
def test_figure_fault_names_the_bound_a_figure_breaks(value: float, fault: str) -> None:
    assert figure_fault(value) == fault
