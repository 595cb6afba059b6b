"""Every numeric setting of the servo and of the webhook is finite and in its documented range,
every address and Kubernetes name is checked at load, and all problems come back at once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from servo.core import settings as S
from servo.core.errors import ConfigError
from servo.system.config import Config, load_config
from servo.webhook.config import WebhookConfig, load_webhook_config

GOOD = {"OPTUNE_URL": "http://127.0.0.1:9/a/{acct}/{app_id}", "OPTUNE_ACCOUNT": "acme"}
Row = S.Setting[int] | S.Setting[float]

# Where each row lands in the config: proves every row is read, and read into the right field.
SERVO_FIELDS: dict[Row, Callable[[Config], Any]] = {
    S.SEND_TIMEOUT: lambda c: c.report.timeout_s,
    S.SEND_DEADLINE: lambda c: c.report.deadline_s,
    S.SEND_MAX_BACKOFF: lambda c: c.report.max_backoff_s,
    S.SEND_WORKERS: lambda c: c.report.workers,
    S.SEND_QUEUE: lambda c: c.report.queue_size,
    S.OUTBOX_MAX_AGE: lambda c: c.report.outbox_max_age_s,
    S.WATCH_TIMEOUT: lambda c: c.watch.timeout_s,
    S.WATCH_IDLE_TIMEOUT: lambda c: c.watch.idle_timeout_s,
    S.WATCH_MAX_BACKOFF: lambda c: c.watch.max_backoff_s,
    S.LIST_PAGE_SIZE: lambda c: c.watch.list_page_size,
    S.DEBUG: lambda c: c.debug,
    S.STATS_WAIT: lambda c: c.stats.wait_s,
    S.STATS_PORT: lambda c: c.stats.port,
    S.FINALIZER_MAX_AGE: lambda c: c.guard.max_age_s,
    S.METRICS_PORT: lambda c: c.metrics.port,
    S.LEADER_LEASE: lambda c: c.leader.lease_s,
    S.LEADER_RETRY: lambda c: c.leader.retry_s,
}
WEBHOOK_FIELDS: dict[Row, Callable[[WebhookConfig], Any]] = {
    S.WEBHOOK_PORT: lambda w: w.port,
    S.WEBHOOK_CA_RECHECK: lambda w: w.ca_recheck_s,
    S.WEBHOOK_BUDGET: lambda w: w.budget_s,
}


def servo_problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config({**GOOD, **env})
    return info.value.problems


def webhook_problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_webhook_config(env)
    return info.value.problems


def bad_values(row: Row) -> list[str]:
    """Values outside the row: not finite, beyond each end, far beyond, not the right type."""
    values = [
        "nan",
        "NaN",
        "inf",
        "-inf",
        "1e400",
        f"{row.maximum * 2 + 1:g}",
        "99999999999999999999",
        "1" * 5000,
        "",
        "x",
    ]
    values.remove("")  # blank means "unset": the default
    if row.minimum > 0:
        values.append(f"{row.minimum / 2:g}")
    values.append(f"{row.minimum - 1:g}")
    if row.kind is int:
        values += ["8443.9", "1.0", "1e3"]
    return values


def test_the_tables_cover_every_row() -> None:
    assert set(SERVO_FIELDS) == set(S.SERVO_SETTINGS)
    assert set(WEBHOOK_FIELDS) == set(S.WEBHOOK_SETTINGS)


@pytest.mark.parametrize("row", S.SERVO_SETTINGS, ids=lambda r: r.name)
def test_each_servo_setting_has_its_default_and_takes_both_ends(row: Row) -> None:
    assert SERVO_FIELDS[row](load_config(GOOD)) == row.default
    env = {"OPTUNE_LEADER_LEASE_SECONDS": "3600"} if row is S.LEADER_RETRY else {}
    for value in (row.minimum, row.maximum):
        if row is S.LEADER_LEASE and value <= S.LEADER_RETRY.default:
            env = {"OPTUNE_LEADER_RETRY_SECONDS": "0.5"}
        got = SERVO_FIELDS[row](load_config({**GOOD, **env, row.name: f"{value!r}"}))
        assert got == value and type(got) is row.kind


@pytest.mark.parametrize("row", S.SERVO_SETTINGS, ids=lambda r: r.name)
def test_each_servo_setting_refuses_values_out_of_range(row: Row) -> None:
    for value in bad_values(row):
        found = servo_problems({row.name: value})
        assert [p for p in found if p.startswith(f"{row.name}=")], (value, found)


@pytest.mark.parametrize("row", S.WEBHOOK_SETTINGS, ids=lambda r: r.name)
def test_each_webhook_setting_has_its_default_and_refuses_values_out_of_range(row: Row) -> None:
    assert WEBHOOK_FIELDS[row](load_webhook_config({})) == row.default
    got = WEBHOOK_FIELDS[row](load_webhook_config({row.name: f"{row.maximum!r}"}))
    assert got == row.maximum and type(got) is row.kind
    for value in bad_values(row):
        found = webhook_problems({row.name: value})
        assert [p for p in found if p.startswith(f"{row.name}=")], (value, found)


def test_webhook_port_with_a_fraction_is_refused_not_truncated() -> None:
    assert webhook_problems({"OPTUNE_WEBHOOK_PORT": "8443.9"}) == [
        "OPTUNE_WEBHOOK_PORT='8443.9': expected an integer in 0..65535"
    ]


def test_every_problem_is_listed_at_once() -> None:
    found = servo_problems({row.name: "nan" for row in S.SERVO_SETTINGS})
    assert sorted(p.split("=")[0] for p in found) == sorted(r.name for r in S.SERVO_SETTINGS)
    found = webhook_problems({row.name: "inf" for row in S.WEBHOOK_SETTINGS})
    assert sorted(p.split("=")[0] for p in found) == sorted(r.name for r in S.WEBHOOK_SETTINGS)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OPTUNE_METRICS_BIND", "abc"),
        ("OPTUNE_METRICS_BIND", "localhost"),
        ("OPTUNE_STATS_BIND", "0.0.0.0:80"),
        ("OPTUNE_LEADER_NAMESPACE", "Bad_NS!"),
        ("OPTUNE_LEADER_NAMESPACE", "a" * 64),
        ("OPTUNE_LEADER_LEASE", "servo..leader"),
        ("OPTUNE_LEADER_LEASE", "Servo"),
        ("OPTUNE_MONITOR_CONTAINER", "Monitor"),
        ("OPTUNE_SLEEPER_IMG", "mon:1 --privileged"),
    ],
)
def test_addresses_and_names_are_checked_at_load(name: str, value: str) -> None:
    assert [p for p in servo_problems({name: value}) if p.startswith(f"{name}=")]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OPTUNE_WEBHOOK_BIND", "abc"),
        ("OPTUNE_WEBHOOK_NAMESPACE", "Servo"),
        ("OPTUNE_WEBHOOK_CONFIG_NAME", "servo webhook"),
        ("OPTUNE_WEBHOOK_CA_RECHECK", "0.001"),
    ],
)
def test_webhook_addresses_names_and_relations_are_checked_at_load(name: str, value: str) -> None:
    assert [p for p in webhook_problems({name: value}) if p.startswith(f"{name}=")]


def test_good_names_and_addresses_are_kept() -> None:
    cfg = load_config(
        {
            **GOOD,
            "OPTUNE_METRICS_BIND": "::1",
            "OPTUNE_LEADER_NAMESPACE": "ops-1",
            "OPTUNE_LEADER_LEASE": "servo.leader",
        }
    )
    assert (cfg.metrics.bind, cfg.leader.namespace, cfg.leader.name) == (
        "::1",
        "ops-1",
        "servo.leader",
    )
    assert load_webhook_config({"OPTUNE_WEBHOOK_CA_RECHECK": "0"}).ca_recheck_s == 0


def test_lease_must_outlast_its_retry_period() -> None:
    found = servo_problems({"OPTUNE_LEADER_LEASE_SECONDS": "2", "OPTUNE_LEADER_RETRY_SECONDS": "2"})
    assert found and found[0].startswith("OPTUNE_LEADER_RETRY_SECONDS=2: must be shorter")


def test_markdown_table_has_one_row_per_setting() -> None:
    table = S.markdown_table(S.SERVO_SETTINGS + S.WEBHOOK_SETTINGS)
    rows = table.splitlines()[2:]
    assert len(rows) == len(S.SERVO_SETTINGS) + len(S.WEBHOOK_SETTINGS)
    assert "| `OPTUNE_SEND_WORKERS` | integer | 1 .. 64 | 4 |" in table


@pytest.mark.parametrize(
    "url",
    [
        "http://h:99999/{app_id}",
        "http://[::1/{app_id}",
        "http://:80/{app_id}",
        "http://h:abc/{app_id}",
        "http://h:0/{app_id}",
    ],
)
def test_urls_with_a_bad_host_or_port_are_refused_at_load(url: str) -> None:
    assert [p for p in servo_problems({"OPTUNE_URL": url}) if p.startswith("OPTUNE_URL=")]
    service = url.replace("{app_id}", "")
    found = webhook_problems({"OPTUNE_STATS_SERVICE_URL": service})
    assert [p for p in found if p.startswith("OPTUNE_STATS_SERVICE_URL=")]


def test_readme_quotes_the_settings_tables_as_printed() -> None:
    readme = (Path(__file__).resolve().parents[4] / "README.md").read_text()
    assert S.markdown_table(S.SERVO_SETTINGS) in readme
    assert S.markdown_table(S.WEBHOOK_SETTINGS) in readme
