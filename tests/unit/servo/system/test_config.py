from __future__ import annotations

import pytest

from servo.core.errors import ConfigError
from servo.system.config import DEFAULT_APP_ID, DEFAULT_SLEEPER_IMAGE, DEFAULT_URL, load_config

URL = "http://127.0.0.1:9/accounts/{acct}/applications/{app_id}/servo"
GOOD = {"OPTUNE_URL": URL, "OPTUNE_ACCOUNT": "acme"}


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(env)
    return info.value.problems


def test_defaults_follow_the_original() -> None:
    cfg = load_config(GOOD)
    assert cfg.watch.namespaces == ("default",)
    assert cfg.app_id.text == DEFAULT_APP_ID
    assert cfg.sleeper_image == DEFAULT_SLEEPER_IMAGE
    assert cfg.report.auth_token is None
    assert cfg.report.timeout_s == 10.0
    assert cfg.report.workers == 4
    assert cfg.debug == 0


def test_every_variable_is_read() -> None:
    cfg = load_config(
        {
            **GOOD,
            "OPTUNE_AUTH_TOKEN": "s3cret",
            "POD_NAMESPACES": "team-a, team-b,team-a",
            "OPTUNE_APP_ID": "metadata/labels/jobid",
            "OPTUNE_SLEEPER_IMG": "registry.k8s.io/pause:3.9",
            "OPTUNE_DEBUG": "3",
            "SELF_IP": "10.1.2.3",
            "OPTUNE_SEND_TIMEOUT": "2.5",
            "OPTUNE_SEND_DEADLINE": "30",
            "OPTUNE_SEND_WORKERS": "2",
            "OPTUNE_WATCH_TIMEOUT": "60",
            "OPTUNE_LOG_FORMAT": "text",
        }
    )
    assert cfg.report.auth_token == "s3cret"
    assert cfg.watch.namespaces == ("team-a", "team-b")
    assert cfg.app_id.text == "metadata/labels/jobid"
    assert cfg.sleeper_image == "registry.k8s.io/pause:3.9"
    assert (cfg.debug, cfg.self_ip, cfg.log_format) == (3, "10.1.2.3", "text")
    assert (cfg.report.timeout_s, cfg.report.deadline_s, cfg.report.workers) == (2.5, 30.0, 2)
    assert cfg.watch.timeout_s == 60


def test_star_means_all_namespaces() -> None:
    cfg = load_config({**GOOD, "POD_NAMESPACES": "*"})
    assert cfg.watch.all_namespaces


def test_masked_config_hides_the_token() -> None:
    cfg = load_config({**GOOD, "OPTUNE_AUTH_TOKEN": "s3cret"})
    assert "s3cret" not in repr(cfg.masked())
    assert cfg.masked()["auth_token"] == "***"


def test_default_url_is_the_bundled_collector_with_its_account() -> None:
    cfg = load_config({})
    assert cfg.report.url_template == DEFAULT_URL and cfg.report.account == "default"
    assert cfg.report.url_for("J 1") == (
        "http://servo-collector.servo.svc:8090/accounts/default/applications/J%201/servo"
    )
    assert load_config({"OPTUNE_ACCOUNT": "acme"}).report.account == "acme"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://x/{acct}/{app_id}", "expected http(s)://host[:port]/path"),
        ("http:///{acct}/{app_id}", "expected http(s)://host[:port]/path"),
        ("http://h/{acct}/{app}", "unknown placeholder {app}"),
        ("http://h/{acct}/{app_id", "bad template"),
        ("http://h/{acct}/all", "no {app_id}"),
    ],
)
def test_bad_urls(url: str, fragment: str) -> None:
    found = problems({"OPTUNE_URL": url, "OPTUNE_ACCOUNT": "a"})
    assert any(fragment in p and url in p for p in found), found


def test_account_required_only_when_the_url_uses_it() -> None:
    assert any("OPTUNE_ACCOUNT" in p for p in problems({"OPTUNE_URL": URL}))
    assert load_config({"OPTUNE_URL": "http://h/apps/{app_id}"}).report.account is None


def test_every_problem_is_listed_at_once() -> None:
    found = problems(
        {
            "OPTUNE_URL": "ftp://x/{nope}",
            "POD_NAMESPACES": " , ",
            "OPTUNE_APP_ID": "spec/[a,b]",
            "OPTUNE_SEND_TIMEOUT": "soon",
            "OPTUNE_DEBUG": "9",
            "SELF_IP": "not-an-ip",
        }
    )
    text = "\n".join(found)
    for name in (
        "OPTUNE_URL",
        "POD_NAMESPACES",
        "OPTUNE_APP_ID",
        "OPTUNE_SEND_TIMEOUT",
        "OPTUNE_DEBUG",
        "SELF_IP",
    ):
        assert name in text, name
    assert len(found) >= 7  # unknown placeholder and bad scheme are two problems


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("OPTUNE_SEND_WORKERS", "2.5", "expected an integer"),
        ("OPTUNE_SEND_WORKERS", "0", "in 1..64"),
        ("OPTUNE_WATCH_TIMEOUT", "ten", "expected an integer"),
        ("OPTUNE_SEND_TIMEOUT", "-1", "in 0.1..300"),
        ("POD_NAMESPACES", "Team_A", "not a namespace name"),
        ("POD_NAMESPACES", "*,default", "'*' means all"),
        ("OPTUNE_LOG_FORMAT", "xml", "json or text"),
    ],
)
def test_bad_values(name: str, value: str, fragment: str) -> None:
    found = problems({**GOOD, name: value})
    assert any(p.startswith(name) and fragment in p for p in found), found


def test_url_for_quotes_the_app_id() -> None:
    cfg = load_config(GOOD)
    assert cfg.report.url_for("a/b c") == (
        "http://127.0.0.1:9/accounts/acme/applications/a%2Fb%20c/servo"
    )
