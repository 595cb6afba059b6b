"""`servo collector` settings as a process: every COLLECTOR_* number and flag is an integer in
its documented range, or the collector exits 2 naming each bad one at once; no other command
reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from servo.collector.settings import LIMITS
from tests.support.collectorkit import clean_env, run_servo

BAD = ["abc", "nan", "inf", "-inf", "1e3", "8443.9", "99999999999999999999", "-1", "9" * 5000]


def test_a_bad_collector_variable_leaves_other_commands_alone() -> None:
    env = clean_env(**{limit.env: "abc" for limit in LIMITS}, COLLECTOR_OPEN="maybe")
    proc = run_servo("--version", env=env)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    assert run_servo("report", "--help", env=env).returncode == 0


@pytest.mark.parametrize("value", BAD)
def test_every_bad_variable_is_named_at_once(tmp_path: Path, value: str) -> None:
    env = clean_env(**{limit.env: value for limit in LIMITS})
    proc = run_servo("collector", "--db", str(tmp_path / "c.db"), env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    for limit in LIMITS:
        assert f"{limit.env}=" in proc.stderr, proc.stderr
    assert len(proc.stderr) < 5000  # a 5,000-digit value is not echoed whole
    assert not (tmp_path / "c.db").exists()  # nothing opened before the checks


def test_every_bad_flag_is_named_at_once(tmp_path: Path) -> None:
    flags = [arg for limit in LIMITS for arg in (limit.flag, "nan")]
    proc = run_servo("collector", *flags, "--db", str(tmp_path / "c.db"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    for limit in LIMITS:
        assert f"{limit.flag}='nan': expected an integer" in proc.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("COLLECTOR_PORT", "65536"),
        ("COLLECTOR_RETENTION_DAYS", "0"),
        ("COLLECTOR_MAX_EVENT_BYTES", "100"),
        ("COLLECTOR_OPEN", "maybe"),
        ("COLLECTOR_TOKENS", "has space"),
        ("COLLECTOR_BIND", "no such host!"),
    ],
)
def test_out_of_range_and_malformed_values_exit_2(tmp_path: Path, name: str, value: str) -> None:
    proc = run_servo("collector", "--db", str(tmp_path / "c.db"), env=clean_env(**{name: value}))
    assert proc.returncode == 2 and name in proc.stderr and "Traceback" not in proc.stderr


def test_help_documents_each_range() -> None:
    out = run_servo("collector", "--help").stdout
    for limit in LIMITS:
        assert limit.env in out and f"{limit.lo}..{limit.hi}" in out
