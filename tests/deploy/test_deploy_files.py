"""Checks of the files users deploy: example/*.yaml and the Dockerfiles.

Schema validation runs kubernetes-validate (schemas ship in the package; no network, no
cluster), linting runs hadolint, and the facts that keep the servo safe and working (least
privilege, one replica, non-root) are asserted on the parsed manifests. A missing tool fails
the test: CI installs both (pyproject's `test` extra).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "example").glob("*.yaml"))
DOCKERFILES = [p for p in (ROOT / "Dockerfile", ROOT / "mon" / "Dockerfile") if p.exists()]
# Oldest release the examples promise to work on, and the one they are written for.
K8S_VERSIONS = ["1.28.0", "1.30.0"]
POD_VERBS = {"get", "list", "watch", "patch"}
SERVO_SUBJECT = {"kind": "ServiceAccount", "name": "servo", "namespace": "servo"}


def _tool(name: str) -> str:
    """Path of a console tool: next to this interpreter first (a venv), then on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} not found next to {sys.executable} nor on PATH; "
            f"install the test extra: pip install -e '.[test]'",
            pytrace=False,
        )
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def _docs(name: str) -> list[dict[str, Any]]:
    """The non-empty YAML documents of example/<name>."""
    yaml = pytest.importorskip("yaml")
    text = (ROOT / "example" / name).read_text()
    return [d for d in yaml.safe_load_all(text) if d]


def _one(name: str, kind: str) -> dict[str, Any]:
    [doc] = [d for d in _docs(name) if d["kind"] == kind]
    return doc


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


# -- schema validation -------------------------------------------------------------------------


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES}
    expected = {"svc-acct.yaml", "svc-role.yaml", "svc-clusterrole.yaml", "deployment.yaml"}
    assert expected | {"service.yaml", "job.yaml"} <= names


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("manifest", EXAMPLES, ids=lambda p: p.name)
def test_manifest_validates_strictly(manifest: Path, version: str) -> None:
    proc = _run(_tool("kubernetes-validate"), "--strict", "-k", version, str(manifest))
    out = proc.stdout + proc.stderr

    assert proc.returncode == 0, out
    # An unknown kind or apiVersion is only a WARN with exit 0: that must fail here too.
    assert "WARN" not in out and "ERROR" not in out, out
    passed = [line for line in out.splitlines() if line.startswith("INFO") and " passed " in line]
    assert len(passed) == len(_docs(manifest.name)), out


# -- Dockerfiles -------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    proc = _run(_tool("hadolint"), "--no-color", "--failure-threshold", "style", str(dockerfile))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == "" and proc.stderr == ""


def test_dockerfile_runs_servo_as_the_manifests_non_root_user() -> None:
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()]
    container = _one("deployment.yaml", "Deployment")["spec"]["template"]["spec"]["containers"][0]

    assert f"USER {container['securityContext']['runAsUser']}" in lines
    assert 'ENTRYPOINT ["servo"]' in lines
    [expose] = [ln for ln in lines if ln.startswith("EXPOSE ")]
    assert {str(p["containerPort"]) for p in container["ports"]} <= set(expose.split()[1:])


# -- facts the manifests must keep -------------------------------------------------------------


def test_service_account_and_namespace() -> None:
    assert _one("svc-acct.yaml", "Namespace")["metadata"]["name"] == "servo"
    account = _one("svc-acct.yaml", "ServiceAccount")["metadata"]
    assert (account["namespace"], account["name"]) == ("servo", "servo")


@pytest.mark.parametrize(
    ("name", "role_kind", "binding_kind"),
    [
        ("svc-role.yaml", "Role", "RoleBinding"),
        ("svc-clusterrole.yaml", "ClusterRole", "ClusterRoleBinding"),
    ],
)
def test_rbac_grants_only_pod_read_and_patch(name: str, role_kind: str, binding_kind: str) -> None:
    docs = _docs(name)
    roles = [d for d in docs if d["kind"] == role_kind]
    bindings = [d for d in docs if d["kind"] == binding_kind]

    assert roles and len(roles) == len(bindings)
    for role in roles:
        [rule] = role["rules"]
        assert rule["apiGroups"] == [""]
        assert rule["resources"] == ["pods"]
        assert sorted(rule["verbs"]) == sorted(POD_VERBS)
        assert set(rule) == {"apiGroups", "resources", "verbs"}
    for binding in bindings:
        ref = binding["roleRef"]
        assert ref["kind"] == role_kind and ref["apiGroup"] == "rbac.authorization.k8s.io"
        assert any(
            r["metadata"]["name"] == ref["name"]
            and r["metadata"].get("namespace") == binding["metadata"].get("namespace")
            for r in roles
        )
        assert binding["subjects"] == [SERVO_SUBJECT]


def test_roles_cover_exactly_the_watched_namespaces() -> None:
    role_namespaces = {
        d["metadata"]["namespace"] for d in _docs("svc-role.yaml") if d["kind"] == "Role"
    }
    container = _one("deployment.yaml", "Deployment")["spec"]["template"]["spec"]["containers"][0]
    watched = set(_env(container)["POD_NAMESPACES"]["value"].split(","))

    assert role_namespaces == watched == {"default", "batch-jobs"}


def test_deployment_is_two_non_root_replicas_with_leader_election_and_probes() -> None:
    deploy = _one("deployment.yaml", "Deployment")
    spec = deploy["spec"]
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    ctx = container["securityContext"]
    env = _env(container)

    assert deploy["metadata"]["namespace"] == "servo"
    # Two replicas are safe only with leader election: each identified by its pod name.
    assert spec["replicas"] == 2
    assert env["OPTUNE_LEADER_ELECTION"]["value"] == "true"
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert pod["serviceAccountName"] == "servo"
    assert env["SELF_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert ctx["runAsNonRoot"] is True and pod["securityContext"]["runAsNonRoot"] is True
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["ports"] == [
        {"name": "stats", "containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 8081, "protocol": "TCP"},
    ]
    assert set(container["resources"]) == {"requests", "limits"}


def test_deployment_env_configures_the_servo() -> None:
    container = _one("deployment.yaml", "Deployment")["spec"]["template"]["spec"]["containers"][0]
    env = _env(container)

    url = env["OPTUNE_URL"]["value"]
    assert url.startswith("https://") and "{acct}" in url and "{app_id}" in url
    assert env["OPTUNE_ACCOUNT"]["value"]
    assert env["OPTUNE_AUTH_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "servo-auth", "key": "token", "optional": True}
    }
    assert env["OPTUNE_APP_ID"]["value"] == "spec/containers/0/env/[JOBID]"
    assert env["OPTUNE_DEBUG"]["value"] == "0"


def test_service_reaches_the_stats_port() -> None:
    service = _one("service.yaml", "Service")
    template = _one("deployment.yaml", "Deployment")["spec"]["template"]

    assert service["metadata"]["namespace"] == "servo"
    assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == "stats"
    assert service["spec"]["ports"][0]["port"] == 8080


def test_sample_job_carries_the_app_id_the_servo_reads() -> None:
    job = _one("job.yaml", "Job")
    pod = job["spec"]["template"]["spec"]
    container = _one("deployment.yaml", "Deployment")["spec"]["template"]["spec"]["containers"][0]
    watched = _env(container)["POD_NAMESPACES"]["value"].split(",")

    assert job["apiVersion"] == "batch/v1"
    assert job["metadata"]["namespace"] in watched
    assert pod["restartPolicy"] == "Never"
    assert _env(pod["containers"][0])["JOBID"]["value"] == "sample-sleep"
    assert job["spec"]["backoffLimit"] == 0


def test_token_review_rbac_is_create_on_tokenreviews_only() -> None:
    role = _one("svc-tokenreview.yaml", "ClusterRole")
    binding = _one("svc-tokenreview.yaml", "ClusterRoleBinding")

    assert role["rules"] == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}
    ]
    ref = {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["roleRef"] == ref
    assert binding["subjects"] == [SERVO_SUBJECT]


@pytest.mark.parametrize("name", ["job-monitored.yaml", "job-monitored-plain.yaml"])
def test_sample_monitor_holds_the_only_mount_of_its_projected_token(name: str) -> None:
    pod = _one(name, "Job")["spec"]["template"]["spec"]
    everyone = pod.get("initContainers", []) + pod["containers"]
    [monitor] = [c for c in everyone if c["name"] == "servo-monitor"]
    [volume] = [v for v in pod["volumes"] if "projected" in v]
    source = volume["projected"]["sources"][0]["serviceAccountToken"]
    mount = next(m for m in monitor["volumeMounts"] if m["name"] == volume["name"])

    assert source["audience"] == "servo-stats" and source["path"] == "token"
    assert (
        f"{mount['mountPath']}/{source['path']}"
        == _env(monitor)["OPTUNE_STATS_TOKEN_FILE"]["value"]
    )
    assert mount["readOnly"] is True and "OPTUNE_STATS_TOKEN" not in _env(monitor)
    others = [c for c in everyone if c is not monitor]
    assert all(m["name"] != volume["name"] for c in others for m in c.get("volumeMounts", []))
