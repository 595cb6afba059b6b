"""servo check, the pure parts: results, exit status, fixes, cgroup layouts on fixture trees."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from servo.check.backend import backend_result, check_outbox
from servo.check.checks import (
    EXIT_API_UNREACHABLE,
    EXIT_CODES,
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_NO_CREDENTIALS,
    EXIT_OK,
    Blocker,
    CheckResult,
    Status,
    check_config,
    exit_code,
    render_json,
    render_text,
    summary,
)
from servo.check.host import check_cgroups, check_port, find_kubepods, node_sys_root
from servo.check.kube import api_blocker, explain_kube_error, rbac_fix, rbac_result
from servo.check.result import short_transport_error
from servo.core.errors import KubeError, ReportError

UID = "3f1c2a4e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
UID_SYSTEMD = UID.replace("-", "_")
URL = "http://127.0.0.1:9/accounts/{acct}/applications/{app_id}/servo"


def ok(name: str = "x") -> CheckResult:
    return CheckResult(name, Status.OK, "fine")


# --- exit status and output -----------------------------------------------------------------


def test_exit_code_ok_warnings_and_skips_do_not_fail() -> None:
    results = [ok(), CheckResult("p", Status.WARN, "busy"), CheckResult("c", Status.SKIP, "no")]
    assert exit_code(results) == EXIT_OK


def test_exit_code_one_failure_is_1_and_a_config_error_is_2() -> None:
    fail = CheckResult("b", Status.FAIL, "down")
    config = CheckResult("configuration", Status.FAIL, "bad", blocker=Blocker.CONFIG)
    assert exit_code([ok(), fail]) == EXIT_FAILED
    assert exit_code([config, fail]) == EXIT_CONFIG


NO_CREDS = CheckResult(
    "kube credentials",
    Status.FAIL,
    "no Kubernetes credentials: not in a pod and no kubeconfig (...)",
    blocker=Blocker.CREDENTIALS,
)
UNREACHABLE = CheckResult("API server", Status.FAIL, "cannot reach", blocker=Blocker.UNREACHABLE)


def test_missing_credentials_and_an_unreachable_server_have_their_own_status_and_words() -> None:
    fail = CheckResult("b", Status.FAIL, "down")
    assert exit_code([ok(), NO_CREDS, fail]) == EXIT_NO_CREDENTIALS == 3
    assert summary([ok(), NO_CREDS, fail]).startswith("no Kubernetes credentials: fix it first")
    assert "configuration" not in summary([ok(), NO_CREDS, fail])
    assert exit_code([ok(), UNREACHABLE, fail]) == EXIT_API_UNREACHABLE == 4
    assert summary([UNREACHABLE]).startswith("the API server cannot be reached: fix it first")
    unusable = CheckResult(
        "kube credentials", Status.FAIL, "cannot use them: x", blocker=Blocker.CREDENTIALS
    )
    assert summary([unusable]).startswith("no usable Kubernetes credentials")


def test_the_most_fundamental_blocker_sets_the_status_and_every_one_is_named() -> None:
    config = CheckResult("configuration", Status.FAIL, "bad", blocker=Blocker.CONFIG)
    results = [config, NO_CREDS, UNREACHABLE]
    assert exit_code(results) == EXIT_CONFIG
    assert summary(results).startswith(
        "configuration error and no Kubernetes credentials and the API server cannot be reached:"
        " fix them first (3 failed"
    )
    assert [code for code, _ in EXIT_CODES] == [2, 3, 4, 1, 0]


@pytest.mark.parametrize(
    ("error", "blocker"),
    [
        (KubeError(0, "ConnectionError", "refused"), Blocker.UNREACHABLE),
        (KubeError(401, "Unauthorized"), Blocker.CREDENTIALS),
        (KubeError(401, "TokenCommandFailed", "exit 1"), Blocker.CREDENTIALS),
        (KubeError(403, "Forbidden"), Blocker.NONE),
        (KubeError(500, "InternalError"), Blocker.NONE),
    ],
)
def test_api_errors_block_by_kind(error: KubeError, blocker: Blocker) -> None:
    assert api_blocker(error) is blocker


def test_text_output_has_one_line_per_check_and_the_fix_under_a_failure() -> None:
    results = [
        ok("configuration"),
        CheckResult("backend", Status.FAIL, "refused", fix="set OPTUNE_AUTH_TOKEN"),
        CheckResult("stats port", Status.WARN, "in use", fix="set OPTUNE_STATS_PORT"),
    ]
    lines = render_text(results).splitlines()
    assert lines[0].startswith("OK    configuration")
    assert lines[1].startswith("FAIL  backend") and lines[2].strip() == "fix: set OPTUNE_AUTH_TOKEN"
    assert lines[3].startswith("WARN  stats port")
    assert lines[-1].startswith("servo check: 1 failed, 1 warning(s)")


def test_json_output() -> None:
    doc = json.loads(render_json([ok(), CheckResult("b", Status.FAIL, "down", fix="start it")]))
    assert doc["ok"] is False and doc["exit_code"] == 1
    assert doc["checks"][1] == {"name": "b", "status": "fail", "detail": "down", "fix": "start it"}


# --- configuration --------------------------------------------------------------------------


def test_config_lists_every_problem_as_a_configuration_error() -> None:
    result, cfg = check_config({"OPTUNE_URL": "ftp://x/{nope}", "POD_NAMESPACES": ","}, None)
    assert cfg is None and result.status is Status.FAIL and result.blocker is Blocker.CONFIG
    assert result.detail.endswith(" problem(s) in the settings")
    assert any("OPTUNE_URL" in n for n in result.notes)
    assert any("POD_NAMESPACES" in n for n in result.notes)
    assert "POD_NAMESPACES" in render_text([result])


def test_config_valid_names_the_namespaces_and_backend() -> None:
    result, cfg = check_config(
        {"OPTUNE_URL": URL, "OPTUNE_ACCOUNT": "acme", "POD_NAMESPACES": "a,b"}, "/k"
    )
    assert cfg is not None and cfg.kubeconfig == "/k"
    assert result.status is Status.OK and "a, b" in result.detail and "acme" in result.detail


# --- API errors and RBAC --------------------------------------------------------------------


def test_401_is_explained_per_credential_source() -> None:
    e = KubeError(401, "Unauthorized")
    detail, fix = explain_kube_error(e, server="https://k", source="token-file")
    assert "401" in detail and "OPTUNE_KUBE_TOKEN_FILE" in fix
    _, fix = explain_kube_error(e, server="https://k", source="kubeconfig")
    assert "kubeconfig" in fix


def test_unreachable_server_names_it() -> None:
    e = KubeError(0, "ConnectionError", "Connection refused")
    detail, fix = explain_kube_error(e, server="https://10.0.0.1:6443", source="token-file")
    assert "https://10.0.0.1:6443" in detail and "OPTUNE_KUBE_SERVER" in fix


def test_untrusted_certificate_points_at_the_ca_file() -> None:
    e = KubeError(0, "ConnectionError", "[SSL: CERTIFICATE_VERIFY_FAILED] self-signed")
    _, fix = explain_kube_error(e, server="https://k", source="token-file")
    assert "OPTUNE_KUBE_CA_FILE" in fix


def test_rbac_result_names_missing_verbs_and_the_example_role() -> None:
    answers = {"get": True, "list": True, "watch": False, "patch": False}
    result = rbac_result(
        "RBAC team", 'pods in namespace "team"', answers, lambda m: rbac_fix("team", m)
    )
    assert result.status is Status.FAIL
    assert "watch, patch" in result.detail and "team" in result.detail
    assert "example/svc-role.yaml" in result.fix and "namespace team" in result.fix


def test_cluster_wide_fix_points_at_the_cluster_role() -> None:
    assert "example/svc-clusterrole.yaml" in rbac_fix(None, ["list"])


def test_rbac_that_cannot_be_asked_is_a_warning() -> None:
    result = rbac_result("RBAC x", "", {}, None, unasked="403 Forbidden")
    assert result.status is Status.WARN and "not verified" in result.detail


BACKEND = "http://127.0.0.1:9/accounts/acme/applications/_global_/servo"


@pytest.mark.parametrize("status", [401, 403])
def test_backend_auth_refusal_names_the_token_variable(status: int) -> None:
    result = backend_result(BACKEND, ReportError("x", status=status), has_token=True)
    assert result.status is Status.FAIL and str(status) in result.detail
    assert "OPTUNE_AUTH_TOKEN" in result.fix and "refused the token" in result.detail
    unset = backend_result(BACKEND, ReportError("x", status=status), has_token=False)
    assert "none is set" in unset.detail and "OPTUNE_AUTH_TOKEN_FILE" in unset.fix
    from_file = backend_result(
        BACKEND,
        ReportError("x", status=status),
        has_token=True,
        token_from="OPTUNE_AUTH_TOKEN_FILE (/var/run/secrets/servo/token)",
    )
    assert from_file.fix.startswith(
        "the token from OPTUNE_AUTH_TOKEN_FILE (/var/run/secrets/servo/token) is not one"
    )


def test_backend_unreachable_names_the_url() -> None:
    result = backend_result(
        BACKEND, ReportError("ConnectionError: refused", transient=True), has_token=False
    )
    assert result.status is Status.FAIL and BACKEND in result.detail and "OPTUNE_URL" in result.fix


def test_backend_unreachable_at_the_default_url_says_it_is_the_in_cluster_collector() -> None:
    error = ReportError("ConnectionError: Failed to resolve", transient=True)
    result = backend_result(BACKEND, error, has_token=False, default_url=True)
    assert result.fix.startswith("OPTUNE_URL is not set, so this is the bundled collector's")


def test_backend_404_points_at_url_and_account() -> None:
    result = backend_result(BACKEND, ReportError("x", status=404), has_token=True)
    assert "OPTUNE_ACCOUNT" in result.fix and "OPTUNE_URL" in result.fix


def test_backend_accepted() -> None:
    assert backend_result(BACKEND, None, has_token=True).status is Status.OK


# --- outbox and ports -----------------------------------------------------------------------


def test_outbox_writable(tmp_path: Path) -> None:
    result = check_outbox(str(tmp_path / "new" / "outbox"))
    assert result.status is Status.OK and (tmp_path / "new" / "outbox").is_dir()
    assert list((tmp_path / "new" / "outbox").iterdir()) == []  # the probe file is gone


def test_outbox_not_writable_names_the_variable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = check_outbox(str(tmp_path / "file" / "outbox"))
    assert result.status is Status.FAIL and "OPTUNE_OUTBOX_DIR" in result.fix


def test_port_in_use_is_only_a_warning() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = check_port("stats port", "OPTUNE_STATS_PORT", "127.0.0.1", port)
    assert result.status is Status.WARN and "OPTUNE_STATS_PORT" in result.fix
    assert check_port("stats port", "OPTUNE_STATS_PORT", "127.0.0.1", port).status is Status.OK
    assert check_port("m", "OPTUNE_METRICS_PORT", "127.0.0.1", 0).status is Status.OK


# --- cgroup layouts -------------------------------------------------------------------------


def v2_tree(root: Path, *pod_dirs: str) -> Path:
    cg = root / "fs" / "cgroup"
    cg.mkdir(parents=True)
    (cg / "cgroup.controllers").write_text("cpu memory pids\n")
    for d in pod_dirs:
        (cg / d).mkdir(parents=True)
    return root


def v1_tree(root: Path, *pod_dirs: str, cpu: bool = True) -> Path:
    cg = root / "fs" / "cgroup"
    for controller in ["memory", "pids"] + (["cpu,cpuacct"] if cpu else []):
        for d in pod_dirs:
            (cg / controller / d).mkdir(parents=True)
        (cg / controller).mkdir(parents=True, exist_ok=True)
    return root


def test_v2_systemd(tmp_path: Path) -> None:
    root = v2_tree(
        tmp_path,
        f"kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_SYSTEMD}.slice",
        "kubepods.slice/kubepods-podaaaaaaaa_bbbb_cccc_dddd_eeeeeeeeeeee.slice",
        "system.slice/containerd.service",
    )
    result = check_cgroups(root)
    assert result.status is Status.OK
    assert "cgroup v2, systemd driver" in result.detail and "2 pod cgroups" in result.detail


def test_v2_cgroupfs(tmp_path: Path) -> None:
    result = check_cgroups(v2_tree(tmp_path, f"kubepods/besteffort/pod{UID}"))
    assert result.status is Status.OK and "cgroup v2, cgroupfs driver" in result.detail


def test_v2_nested_under_another_slice_as_kind_does(tmp_path: Path) -> None:
    root = v2_tree(
        tmp_path, f"kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-pod{UID_SYSTEMD}.slice"
    )
    result = check_cgroups(root)
    assert result.status is Status.OK and "systemd driver" in result.detail
    assert "kubelet-kubepods.slice" in result.detail


def test_v1_cgroupfs(tmp_path: Path) -> None:
    result = check_cgroups(v1_tree(tmp_path, f"kubepods/burstable/pod{UID}"))
    assert result.status is Status.OK
    assert "cgroup v1, cgroupfs driver" in result.detail and "1 pod cgroups" in result.detail


def test_v1_without_cpuacct_is_a_warning(tmp_path: Path) -> None:
    result = check_cgroups(v1_tree(tmp_path, "kubepods.slice", cpu=False))
    assert result.status is Status.WARN and "systemd driver" in result.detail


def test_no_kubepods_fails_with_the_fix(tmp_path: Path) -> None:
    result = check_cgroups(v2_tree(tmp_path, "system.slice/sshd.service"))
    assert result.status is Status.FAIL and "no kubepods" in result.detail
    assert "/rsys" in result.fix


def test_no_cgroup_hierarchy_fails(tmp_path: Path) -> None:
    result = check_cgroups(tmp_path)
    assert result.status is Status.FAIL and "no cgroup hierarchy" in result.detail


def test_pod_uid_found_or_not(tmp_path: Path) -> None:
    root = v2_tree(tmp_path, f"kubepods.slice/kubepods-pod{UID_SYSTEMD}.slice")
    found = check_cgroups(root, pod_uid=UID)
    assert found.status is Status.OK and f"pod{UID_SYSTEMD}.slice" in found.detail
    missing = check_cgroups(root, pod_uid="00000000-0000-0000-0000-000000000000")
    assert missing.status is Status.FAIL and missing.notes  # the paths tried


def test_skipped_off_a_node(tmp_path: Path) -> None:
    assert node_sys_root(None, tmp_path / "rsys") is None
    (tmp_path / "rsys").mkdir()
    assert node_sys_root(None, tmp_path / "rsys") == tmp_path / "rsys"
    assert node_sys_root(tmp_path / "given", tmp_path / "rsys") == tmp_path / "given"
    result = check_cgroups(None)
    assert result.status is Status.SKIP and "--sys-root" in result.detail


def test_find_kubepods_does_not_enter_pod_directories(tmp_path: Path) -> None:
    (tmp_path / f"pod{UID}" / "kubepods").mkdir(parents=True)
    assert find_kubepods(tmp_path) is None


def test_connection_errors_are_shortened_to_their_gist() -> None:
    refused = (
        "ConnectionError: HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded "
        '(Caused by NewConnectionError("...: Failed to establish a new connection: [Errno 111] '
        'Connection refused"))'
    )
    assert short_transport_error(refused) == "[Errno 111] Connection refused"
    assert short_transport_error("Read timed out. (read timeout=3)") == "timed out"
    assert "not resolved" in short_transport_error("Failed to resolve 'servo-collector.servo.svc'")
    assert short_transport_error("odd") == "odd"


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "1e400", "soon", "301"])
def test_check_timeout_flag_out_of_range_is_a_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from servo.__main__ import build_parser

    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["check", "--timeout", value])
    assert info.value.code == 2
    assert "--timeout" in capsys.readouterr().err


def test_check_timeout_flag_in_range_is_kept() -> None:
    from servo.__main__ import build_parser

    assert build_parser().parse_args(["check", "--timeout", "2.5"]).timeout == 2.5
