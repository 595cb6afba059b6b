"""Table tests of the pure admission logic: quantities, the monitor patch, DESCRIBE and ADJUST."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest

from servo.webhook.admission import (
    MONITOR_LIMITS,
    MonitorSpec,
    has_monitor,
    is_guaranteed,
    monitor_patch,
    parse_k8s_version,
)
from servo.webhook.resources import Ranges, build_adjustment, build_description
from tests.support.helpers import job_pod

NATIVE = MonitorSpec("servo-monitor", "mon:1", "http://servo.servo.svc:8080/", native=True)
PLAIN = MonitorSpec("servo-monitor", "mon:1", "http://servo.servo.svc:8080/", native=False)


@pytest.mark.parametrize(
    ("major", "minor", "git", "version"),
    [
        ("1", "30", "v1.30.0", (1, 30)),
        ("1", "27+", "v1.27.8-gke.1067004", (1, 27)),
        ("", "", "v1.33.1", (1, 33)),
        ("", "", "1.28", (1, 28)),
        ("", "", "garbage", None),
    ],
)
def test_k8s_version(major: str, minor: str, git: str, version: tuple[int, int] | None) -> None:
    assert parse_k8s_version(major, minor, git) == version


# -- the monitor patch --------------------------------------------------------------------


def _apply(pod: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    result: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(pod), ops)
    return result


def test_native_monitor_is_the_first_init_container_with_restart_policy_always() -> None:
    pod = job_pod()
    out = _apply(pod, monitor_patch(pod, NATIVE))
    [monitor] = out["spec"]["initContainers"]
    env = {e["name"]: e for e in monitor["env"]}

    assert monitor["name"] == "servo-monitor" and monitor["restartPolicy"] == "Always"
    assert monitor["image"] == "mon:1"
    assert "OPTUNE_STATS_TOKEN" not in env  # no credential in the pod spec
    assert env["OPTUNE_STATS_TOKEN_FILE"]["value"] == "/var/run/secrets/servo/token"
    assert env["OPTUNE_SIDECAR_STYLE"]["value"] == "native"
    assert env["OPTUNE_STATS_URL"]["value"] == "http://servo.servo.svc:8080/"
    assert env["OPTUNE_POD_UID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.uid"
    assert env["OPTUNE_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["OPTUNE_POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.namespace"
    )
    assert monitor["terminationMessagePath"] == "/dev/termination-log"
    assert monitor["volumeMounts"] == [
        {"name": "servo-rsys", "mountPath": "/rsys", "readOnly": True},
        {"name": "servo-stats-token", "mountPath": "/var/run/secrets/servo", "readOnly": True},
    ]
    assert monitor["resources"] == {
        "requests": {"cpu": "10m", "memory": "48Mi"},
        "limits": {"cpu": "100m", "memory": "64Mi"},
    }
    assert out["spec"]["volumes"][-2:] == [
        {"name": "servo-rsys", "hostPath": {"path": "/sys", "type": "Directory"}},
        {
            "name": "servo-stats-token",
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": "servo-stats",
                            "expirationSeconds": 3600,
                            "path": "token",
                        }
                    }
                ]
            },
        },
    ]
    # The token is the monitor's alone: no other container mounts it.
    assert out["spec"]["containers"] == pod["spec"]["containers"]


def test_native_monitor_goes_before_existing_init_containers() -> None:
    pod = job_pod()
    pod["spec"]["initContainers"] = [{"name": "setup", "image": "busybox"}]
    out = _apply(pod, monitor_patch(pod, NATIVE))

    assert [c["name"] for c in out["spec"]["initContainers"]] == ["servo-monitor", "setup"]


def test_plain_monitor_is_appended_so_container_indexes_stay() -> None:
    pod = job_pod()
    out = _apply(pod, monitor_patch(pod, PLAIN))
    names = [c["name"] for c in out["spec"]["containers"]]

    assert names == [c["name"] for c in pod["spec"]["containers"]] + ["servo-monitor"]
    assert "restartPolicy" not in out["spec"]["containers"][-1]
    env = {e["name"]: e["value"] for e in out["spec"]["containers"][-1]["env"] if "value" in e}
    assert env["OPTUNE_SIDECAR_STYLE"] == "plain"
    assert "initContainers" not in out["spec"]


def test_pod_without_volumes_gets_the_list() -> None:
    pod = job_pod()
    del pod["spec"]["volumes"]
    out = _apply(pod, monitor_patch(pod, NATIVE))

    assert [v["name"] for v in out["spec"]["volumes"]] == ["servo-rsys", "servo-stats-token"]


def test_volume_name_taken_by_the_user_is_not_reused() -> None:
    pod = job_pod()
    pod["spec"]["volumes"].append({"name": "servo-rsys", "emptyDir": {}})
    pod["spec"]["volumes"].append({"name": "servo-stats-token", "emptyDir": {}})
    out = _apply(pod, monitor_patch(pod, NATIVE))

    mounts = [m["name"] for m in out["spec"]["initContainers"][0]["volumeMounts"]]
    assert mounts == ["servo-rsys-2", "servo-stats-token-2"]
    assert [v["name"] for v in out["spec"]["volumes"][-2:]] == mounts


@pytest.mark.parametrize(
    ("grace", "expected"), [(0, 30), (5, 30), (30, 30), (120, 120), (None, None)]
)
def test_grace_period_is_raised_to_30_s(grace: int | None, expected: int | None) -> None:
    pod = job_pod()
    pod["spec"].pop("terminationGracePeriodSeconds", None)
    if grace is not None:
        pod["spec"]["terminationGracePeriodSeconds"] = grace
    out = _apply(pod, monitor_patch(pod, NATIVE))

    assert out["spec"].get("terminationGracePeriodSeconds") == expected


def test_guaranteed_pod_gets_a_guaranteed_monitor() -> None:
    pod = job_pod()
    for c in pod["spec"]["containers"]:
        c["resources"] = {
            "limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "1000m", "memory": "1Gi"},
        }
    assert is_guaranteed(pod)
    out = _apply(pod, monitor_patch(pod, NATIVE))

    assert out["spec"]["initContainers"][0]["resources"]["requests"] == MONITOR_LIMITS
    assert is_guaranteed(out)


@pytest.mark.parametrize("cpu", ["1e999999999", "1e-999999999", "9" * 50])
def test_a_quantity_out_of_range_still_gets_the_monitor(cpu: str) -> None:
    pod = job_pod()
    pod["spec"]["containers"][0]["resources"] = {"limits": {"cpu": cpu, "memory": "1Gi"}}
    out = _apply(pod, monitor_patch(pod, NATIVE))

    assert has_monitor(out, "servo-monitor")
    desc = build_description(out["spec"]["containers"][0], Ranges())
    settings = desc["application"]["components"]["job"]["settings"]
    assert settings["cpu"]["value"] is None and settings["mem"]["value"] == 1.0


def test_has_monitor_sees_plain_and_native() -> None:
    pod = job_pod()
    assert not has_monitor(pod, "servo-monitor")
    assert has_monitor(_apply(pod, monitor_patch(pod, NATIVE)), "servo-monitor")
    assert has_monitor(_apply(pod, monitor_patch(pod, PLAIN)), "servo-monitor")


# -- DESCRIBE and ADJUST ------------------------------------------------------------------


def _adjust(settings: dict[str, Any], component: str = "job") -> dict[str, Any]:
    return {"state": {"application": {"components": {component: {"settings": settings}}}}}


def test_description_has_cpu_and_mem_of_the_job_container_and_the_metrics() -> None:
    pod = job_pod()
    desc = build_description(pod["spec"]["containers"][0], Ranges())
    settings = desc["application"]["components"]["job"]["settings"]

    assert settings["cpu"]["value"] == 4.0 and settings["cpu"]["type"] == "range"
    assert settings["mem"]["value"] == 16.0
    assert {"min", "max", "step"} <= set(settings["mem"])
    assert set(desc["measurement"]["metrics"]) == {
        "duration",
        "perf",
        "est_duration",
        "cpu_time",
        "max_memory",
    }


@pytest.mark.parametrize(
    ("settings", "limits", "requests"),
    [
        # fixture: limits cpu 4, memory 16Gi; requests cpu 2, memory 8Gi
        ({"cpu": {"value": 3}}, {"cpu": "3", "memory": "16Gi"}, {"cpu": "2", "memory": "8Gi"}),
        ({"cpu": {"value": 1}}, {"cpu": "1", "memory": "16Gi"}, {"cpu": "1", "memory": "8Gi"}),
        (
            {"cpu": {"value": 0.5}},
            {"cpu": "500m", "memory": "16Gi"},
            {"cpu": "500m", "memory": "8Gi"},
        ),
        ({"mem": {"value": 4}}, {"cpu": "4", "memory": "4Gi"}, {"cpu": "2", "memory": "4Gi"}),
        ({"mem": {"value": 0.5}}, {"cpu": "4", "memory": "512Mi"}, {"cpu": "2", "memory": "512Mi"}),
        (
            {"mem": {"value": "12Gi"}, "cpu": {"value": "2500m"}},
            {"cpu": "2500m", "memory": "12Gi"},
            {"cpu": "2", "memory": "8Gi"},
        ),
    ],
)
def test_adjust_sets_limits_and_keeps_requests_below(
    settings: dict[str, Any], limits: dict[str, str], requests: dict[str, str]
) -> None:
    pod = job_pod()
    adj = build_adjustment(pod, _adjust(settings), index=0, ranges=Ranges())
    out = _apply(pod, adj.ops)
    res = out["spec"]["containers"][0]["resources"]

    assert adj.ok, adj.reply
    assert {k: res["limits"][k] for k in ("cpu", "memory")} == limits
    assert {k: res["requests"][k] for k in ("cpu", "memory")} == requests
    assert res["limits"]["nvidia.com/gpu"] == "1"  # other resources stay


def test_adjust_of_a_guaranteed_container_keeps_requests_equal_to_limits() -> None:
    pod = job_pod()
    pod["spec"]["containers"][0]["resources"] = {
        "limits": {"cpu": "1", "memory": "1Gi"},
        "requests": {"cpu": "1", "memory": "1Gi"},
    }
    adj = build_adjustment(
        pod, _adjust({"cpu": {"value": 2}, "mem": {"value": 2}}), index=0, ranges=Ranges()
    )
    res = _apply(pod, adj.ops)["spec"]["containers"][0]["resources"]

    assert res == {
        "limits": {"cpu": "2", "memory": "2Gi"},
        "requests": {"cpu": "2", "memory": "2Gi"},
    }


def test_adjust_of_a_container_without_resources_sets_both() -> None:
    pod = job_pod()
    pod["spec"]["containers"][0].pop("resources")
    adj = build_adjustment(pod, _adjust({"mem": {"value": 1}}), index=0, ranges=Ranges())
    res = _apply(pod, adj.ops)["spec"]["containers"][0]["resources"]

    assert res == {"limits": {"memory": "1Gi"}, "requests": {"memory": "1Gi"}}


@pytest.mark.parametrize(
    ("param", "reason"),
    [
        (_adjust({"cpu": {"value": 1}}, component="other"), "unknown-component"),
        (_adjust({"cpu": {"value": "lots"}}), "bad-value"),
        (_adjust({"cpu": {"value": -1}}), "bad-value"),
        (_adjust({"cpu": {"value": 0}}), "bad-value"),
        (_adjust({"cpu": {"value": 1000}}), "bad-value"),
        (_adjust({"cpu": {"value": float("nan")}}), "bad-value"),
        (_adjust({"cpu": {"value": True}}), "bad-value"),
        (_adjust({"mem": {"value": None}}), "bad-value"),
        (_adjust({"replicas": {"value": 2}}), "bad-value"),
        ({"state": {}}, "bad-value"),
        (None, "bad-value"),
        ("ADJUST", "bad-value"),
    ],
)
def test_bad_adjust_fails_and_changes_nothing(param: Any, reason: str) -> None:
    adj = build_adjustment(job_pod(), param, index=0, ranges=Ranges())

    assert not adj.ok and adj.ops == []
    assert adj.reply["status"] == "failed" and adj.reply["reason"] == reason
    assert adj.reply["message"]


def test_adjust_reply_states_what_was_set() -> None:
    adj = build_adjustment(
        job_pod(), _adjust({"cpu": {"value": 0.5}, "mem": {"value": 2}}), index=0, ranges=Ranges()
    )

    assert adj.reply == {
        "status": "ok",
        "state": {
            "application": {
                "components": {"job": {"settings": {"cpu": {"value": 0.5}, "mem": {"value": 2.0}}}}
            }
        },
    }
