"""Configuration from a dict: defaults, the original's names, and every problem at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from mon.config import describe, load_config
from mon.errors import ConfigError
from tests.support.cgtree import POD_UID


def test_defaults() -> None:
    c = load_config({"OPTUNE_POD_UID": POD_UID})
    assert c.pod_uid == POD_UID
    assert c.sys_root == Path("/rsys")
    assert c.termination_log == Path("/dev/termination-log")
    assert c.stats_url is None and c.stats_token_file == Path("/var/run/secrets/servo/token")
    assert c.poll_interval_s == 1.0
    assert c.cgroup_path is None


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({"REPORT_TARGET": "servo.default"}, "http://servo.default:8080/"),
        ({"SELF_IP": "10.0.0.7"}, "http://10.0.0.7:8080/"),
        ({"SELF_IP": "fd00::7"}, "http://[fd00::7]:8080/"),
        ({"REPORT_TARGET": "a", "SELF_IP": "b"}, "http://a:8080/"),
        ({"OPTUNE_STATS_URL": "https://s/x", "REPORT_TARGET": "a"}, "https://s/x"),
    ],
)
def test_stats_url(env: dict[str, str], url: str) -> None:
    assert load_config({"OPTUNE_POD_UID": POD_UID, **env}).stats_url == url


def test_original_names_still_work() -> None:
    c = load_config({"OPTUNE_SELF_ID": "legacy-id", "OPTUNE_CGROUP_PATH": "/kubepods/x/pody"})
    assert c.pod_uid == "legacy-id"
    assert c.cgroup_path == "/kubepods/x/pody"


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(
            {
                "OPTUNE_POLL_INTERVAL": "0",
                "OPTUNE_STATS_URL": "ftp://x",
                "OPTUNE_SYS_ROOT": "relative",
                "OPTUNE_SHARED_PID_NAMESPACE": "maybe",
                "OPTUNE_LOG_FORMAT": "xml",
            }
        )
    lines = str(info.value).splitlines()
    assert len(lines) == 6
    for name in (
        "OPTUNE_POD_UID",
        "OPTUNE_POLL_INTERVAL='0'",
        "OPTUNE_STATS_URL='ftp://x'",
        "OPTUNE_SYS_ROOT='relative'",
        "OPTUNE_SHARED_PID_NAMESPACE='maybe'",
        "OPTUNE_LOG_FORMAT='xml'",
    ):
        assert any(line.startswith(name) for line in lines), name


def test_bad_uid_is_rejected() -> None:
    with pytest.raises(ConfigError, match="OPTUNE_POD_UID='../etc'"):
        load_config({"OPTUNE_POD_UID": "../etc"})


def test_the_token_is_a_file_whose_path_is_logged_never_its_content() -> None:
    c = load_config({"OPTUNE_POD_UID": POD_UID})
    assert c.stats_token_file == Path("/var/run/secrets/servo/token")
    c = load_config({"OPTUNE_POD_UID": POD_UID, "OPTUNE_STATS_TOKEN_FILE": "/t/token"})
    assert describe(c)["stats_token_file"] == "/t/token"
    with pytest.raises(ConfigError, match="OPTUNE_STATS_TOKEN_FILE"):
        load_config({"OPTUNE_POD_UID": POD_UID, "OPTUNE_STATS_TOKEN_FILE": "relative/token"})


NUMERIC = (
    "OPTUNE_POLL_INTERVAL",
    "OPTUNE_POST_TIMEOUT",
    "OPTUNE_CGROUP_SEARCH_DEPTH",
    "OPTUNE_UNSEEN_WAIT",
    "OPTUNE_DEBUG",
)


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "1e999", "9" * 5000, "-1", "1e9"])
def test_every_numeric_setting_is_finite_and_in_range_all_named_at_once(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"OPTUNE_POD_UID": POD_UID, **dict.fromkeys(NUMERIC, raw)})
    lines = str(info.value).splitlines()
    assert len(lines) == len(NUMERIC)
    for name in NUMERIC:
        assert any(line.startswith(f"{name}={raw!r}: expected") for line in lines), name


def test_sidecar_style_sets_the_sibling_watch_default() -> None:
    plain = load_config({"OPTUNE_POD_UID": POD_UID})
    assert plain.sidecar_style == "plain" and plain.watch_siblings and plain.unseen_wait_s == 30
    native = load_config({"OPTUNE_POD_UID": POD_UID, "OPTUNE_SIDECAR_STYLE": "Native"})
    assert native.sidecar_style == "native" and not native.watch_siblings
    both = load_config(
        {"OPTUNE_POD_UID": POD_UID, "OPTUNE_SIDECAR_STYLE": "native", "OPTUNE_WATCH_SIBLINGS": "1"}
    )
    assert both.watch_siblings
    with pytest.raises(ConfigError, match="OPTUNE_SIDECAR_STYLE='sidecar'"):
        load_config({"OPTUNE_POD_UID": POD_UID, "OPTUNE_SIDECAR_STYLE": "sidecar"})
    assert describe(native)["sidecar_style"] == "native"
