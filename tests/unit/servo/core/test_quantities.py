"""Kubernetes quantities: parsed exactly, refused out of range, written back canonically."""

from __future__ import annotations

from decimal import Decimal

import pytest

from servo.core.quantities import (
    format_cpu,
    format_memory,
    parse_cpu_cores,
    parse_memory_bytes,
    parse_quantity,
)


@pytest.mark.parametrize(
    ("text", "cores"),
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        ("0.25", Decimal("0.25")),
        ("1.5", Decimal("1.5")),
        ("100m", Decimal("0.1")),
        ("1", Decimal(1)),
        ("250000u", Decimal("0.25")),
        ("+2", Decimal(2)),
        (".5", Decimal("0.5")),
        ("2.", Decimal(2)),
    ],
)
def test_cpu_quantities(text: str, cores: Decimal) -> None:
    assert parse_cpu_cores(text) == cores


@pytest.mark.parametrize(
    ("text", "n_bytes"),
    [
        ("64Mi", 64 * 2**20),
        ("1G", 10**9),
        ("1e9", 10**9),
        ("1E9", 10**9),
        ("1Gi", 2**30),
        ("1.5Ki", 1536),
        ("128974848", 128974848),
        ("129e6", 129_000_000),
        ("123Mi", 123 * 2**20),
        ("128974848000m", 128974848),
        ("1k", 1000),
        ("1Ti", 2**40),
        ("1E", 10**18),
        ("0.5", 1),  # bytes round up
        ("0", 0),
    ],
)
def test_memory_quantities(text: str, n_bytes: int) -> None:
    assert parse_memory_bytes(text) == n_bytes


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "1K",
        "1kb",
        "1 Gi",
        "Mi",
        "1e",
        "1Gi2",
        "--1",
        "1.2.3",
        "1e3m",
        "1e999999999",
        "1e-999999999",
        "1e31",
        "1e19",
        "9" * 41,
        "16Ei",
        "1" + "0" * 5000 + "e1",
    ],
)
def test_bad_quantities_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("cores", "text"),
    [
        (Decimal("0.5"), "500m"),
        (Decimal(2), "2"),
        (Decimal("0.0001"), "1m"),
        (Decimal("1.25"), "1250m"),
    ],
)
def test_format_cpu(cores: Decimal, text: str) -> None:
    assert format_cpu(cores) == text


@pytest.mark.parametrize(
    ("n_bytes", "text"),
    [
        (2**30, "1Gi"),
        (64 * 2**20, "64Mi"),
        (3 * 2**10, "3Ki"),
        (1536, "1536"),
        (10**9, "1000000000"),
    ],
)
def test_format_memory(n_bytes: int, text: str) -> None:
    assert format_memory(n_bytes) == text
