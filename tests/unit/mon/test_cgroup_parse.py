"""Pure parsers, by table: good, empty, corrupt and half-written contents."""

from __future__ import annotations

import pytest

from mon import cgroup_parse as p
from mon.errors import CgroupParseError


@pytest.mark.parametrize(
    ("text", "expected"),
    [("524288000\n", 524288000), ("0", 0), ("  42 \n", 42)],
)
def test_parse_int_reads_one_number(text: str, expected: int) -> None:
    assert p.parse_int(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("\n", "empty"),
        ("max\n", "not a non-negative integer"),
        ("-1\n", "not a non-negative integer"),
        ("12 34\n", "not a non-negative integer"),
        ("\x00\x00", "not a non-negative integer"),
    ],
)
def test_parse_int_rejects_garbage_with_reason(text: str, reason: str) -> None:
    with pytest.raises(CgroupParseError, match=reason):
        p.parse_int(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a 1\nb 2\n", {"a": 1, "b": 2}),
        ("", {}),
        ("a 1\nb", {"a": 1}),  # half-written last line
        ("a 1\nb \n", {"a": 1}),
        ("a x\nb 2\n", {"b": 2}),  # corrupt value
        ("a 1 2\nb 3\n", {"b": 3}),  # nested-keyed line, not flat
    ],
)
def test_parse_keyed_skips_malformed_lines(text: str, expected: dict[str, int]) -> None:
    assert p.parse_keyed(text) == expected


@pytest.mark.parametrize(
    ("text", "values", "missing"),
    [
        (
            "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
            {"cpu_time": 2.5, "cpu_user": 2.0, "cpu_system": 0.5},
            {},
        ),
        (
            "usage_usec 1500000\nuser_usec 1000000\nsystem_u",
            {"cpu_time": 1.5, "cpu_user": 1.0},
            {"cpu_system": "cpu.stat: no system_usec field"},
        ),
        (
            "",
            {},
            {
                "cpu_time": "cpu.stat: no usage_usec field",
                "cpu_user": "cpu.stat: no user_usec field",
                "cpu_system": "cpu.stat: no system_usec field",
            },
        ),
    ],
)
def test_v2_cpu_stat_is_microseconds(
    text: str, values: dict[str, float], missing: dict[str, str]
) -> None:
    reading = p.cpu_from_v2_stat(text)
    assert reading.values == pytest.approx(values)
    assert reading.missing == missing


@pytest.mark.parametrize(
    ("text", "values", "missing"),
    [
        ("2500000000\n", {"cpu_time": 2.5}, {}),
        ("", {}, {"cpu_time": "cpuacct.usage: empty"}),
        ("25000x", {}, {"cpu_time": "cpuacct.usage: not a non-negative integer: '25000x'"}),
    ],
)
def test_v1_cpuacct_usage_is_nanoseconds(
    text: str, values: dict[str, float], missing: dict[str, str]
) -> None:
    reading = p.cpu_time_from_v1_usage(text)
    assert reading.values == pytest.approx(values)
    assert reading.missing == missing


@pytest.mark.parametrize(
    ("text", "clk_tck", "values", "missing"),
    [
        ("user 250\nsystem 50\n", 100, {"cpu_user": 2.5, "cpu_system": 0.5}, {}),
        ("user 250\nsystem 50\n", 250, {"cpu_user": 1.0, "cpu_system": 0.2}, {}),
        ("user 250\nsys", 100, {"cpu_user": 2.5}, {"cpu_system": "cpuacct.stat: no system field"}),
    ],
)
def test_v1_cpuacct_stat_is_user_hz_ticks(
    text: str, clk_tck: int, values: dict[str, float], missing: dict[str, str]
) -> None:
    reading = p.cpu_split_from_v1_stat(text, clk_tck=clk_tck)
    assert reading.values == pytest.approx(values)
    assert reading.missing == missing


def test_v2_memory_stat_breakdown() -> None:
    reading = p.memory_from_v2_stat("anon 10\nfile 20\nkernel_stack 30\npagetables 40\nsock 1\n")
    assert reading.values == {
        "memory.anon": 10,
        "memory.file": 20,
        "memory.kernel_stack": 30,
        "memory.pagetables": 40,
    }
    assert reading.missing == {}


def test_v2_memory_stat_half_written_names_the_absent_fields() -> None:
    reading = p.memory_from_v2_stat("anon 10\nfile 20\nkernel_st")
    assert reading.values == {"memory.anon": 10, "memory.file": 20}
    assert reading.missing == {
        "memory.kernel_stack": "memory.stat: no kernel_stack field",
        "memory.pagetables": "memory.stat: no pagetables field",
    }


@pytest.mark.parametrize(
    ("text", "values", "missing"),
    [
        (
            # Hierarchical totals win over the pod dir's own (near empty) counters; rss already
            # includes THP, so total_rss_huge is not added.
            "cache 1\nrss 2\ntotal_cache 300\ntotal_rss 400\ntotal_rss_huge 100\n",
            {"memory.anon": 400, "memory.file": 300},
            {
                "memory.kernel_stack": "not reported by cgroup v1 memory.stat",
                "memory.pagetables": "not reported by cgroup v1 memory.stat",
            },
        ),
        (
            "cache 5\nrss 6\n",
            {"memory.anon": 6, "memory.file": 5},
            {
                "memory.kernel_stack": "not reported by cgroup v1 memory.stat",
                "memory.pagetables": "not reported by cgroup v1 memory.stat",
            },
        ),
        (
            "",
            {},
            {
                "memory.anon": "memory.stat: no total_rss field",
                "memory.file": "memory.stat: no total_cache field",
                "memory.kernel_stack": "memory.stat: no total_kernel_stack field",
                "memory.pagetables": "memory.stat: no total_pagetables field",
            },
        ),
    ],
)
def test_v1_memory_stat_nearest_breakdown(
    text: str, values: dict[str, int], missing: dict[str, str]
) -> None:
    reading = p.memory_from_v1_stat(text)
    assert reading.values == values
    assert reading.missing == missing


@pytest.mark.parametrize(
    ("text", "values", "missing"),
    [
        ("1048576\n", {"max_memory": 1048576}, {}),
        ("", {}, {"max_memory": "memory.peak: empty"}),
        ("10485", {"max_memory": 10485}, {}),
    ],
)
def test_max_memory(text: str, values: dict[str, int], missing: dict[str, str]) -> None:
    reading = p.max_memory_from_file(text, source="memory.peak")
    assert (reading.values, reading.missing) == (values, missing)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("populated 1\nfrozen 0\n", True),
        ("populated 0\nfrozen 0\n", False),
        ("popul", None),
        ("", None),
    ],
)
def test_is_populated(text: str, expected: bool | None) -> None:
    assert p.is_populated(text) is expected
