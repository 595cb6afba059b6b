"""The reporting checks of `servo check`: the backend accepts a HELLO, the outbox takes a file.

`backend_result` turns the HELLO's outcome into a result and its fix without I/O; `check_backend`
sends it (the report package's Reporter, a short deadline). The order of the checks is
checks.py's.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import replace
from pathlib import Path

from servo.check.result import CheckResult, Status, short_transport_error
from servo.core.errors import ReportError
from servo.system.config_sections import ReportConfig


def token_source(report: ReportConfig) -> str | None:
    """Where the backend token comes from, for people; None: no token."""
    if report.auth_token_file is not None:
        return f"OPTUNE_AUTH_TOKEN_FILE ({report.auth_token_file.path})"
    return "OPTUNE_AUTH_TOKEN" if report.auth_token else None


def backend_result(
    url: str,
    error: ReportError | None,
    *,
    has_token: bool,
    token_from: str | None = None,
    default_url: bool = False,
) -> CheckResult:
    """Pure: the result of the HELLO (None: accepted). `token_from` names the token's source;
    `default_url`: OPTUNE_URL is unset, so the URL is the bundled collector's in the cluster."""
    if error is None:
        return CheckResult("backend", Status.OK, f"{url} accepted a HELLO")
    if error.status in (401, 403):
        if has_token:
            source = token_from or "OPTUNE_AUTH_TOKEN"
            what = "refused the token"
            fix = f"the token from {source} is not one the backend accepts: put the right one there"
        else:
            what = "wants a token and none is set"
            fix = "set OPTUNE_AUTH_TOKEN, or OPTUNE_AUTH_TOKEN_FILE to a file holding it"
        return CheckResult(
            "backend",
            Status.FAIL,
            f"{url} refused the HELLO: HTTP {error.status} (the backend {what})",
            fix=fix,
        )
    if error.status is None:
        fix = "check OPTUNE_URL (host and port), that the backend runs, and the network to it"
        if default_url:
            fix = (
                "OPTUNE_URL is not set, so this is the bundled collector's address inside the "
                "cluster (example/collector.yaml): deploy it, or set OPTUNE_URL to your backend"
            )
        return CheckResult(
            "backend",
            Status.FAIL,
            f"cannot reach the backend at {url}: {short_transport_error(str(error))}",
            fix=fix,
        )
    excerpt = f" ({error.body_excerpt.strip()[:120]})" if error.body_excerpt.strip() else ""
    if error.status == 404:
        fix = "check OPTUNE_URL's path and OPTUNE_ACCOUNT: the backend has no such URL"
    elif error.status >= 500 or error.status in (408, 429):
        fix = "the backend is failing or overloaded: see its logs, then check again"
    else:
        fix = "check OPTUNE_URL: the backend does not take the servo's protocol there"
    return CheckResult(
        "backend", Status.FAIL, f"{url} refused the HELLO: HTTP {error.status}{excerpt}", fix=fix
    )


def check_backend(
    report: ReportConfig, *, timeout_s: float, deadline_s: float, default_url: bool = False
) -> CheckResult:
    """POST a HELLO with an id of its own (check-<uuid>:HELLO), as the servo does at start."""
    import requests

    from servo.core.models import GLOBAL_APP_ID, Event
    from servo.report.reporter import Reporter

    cfg = replace(
        report,
        timeout_s=min(report.timeout_s, timeout_s),
        max_backoff_s=min(report.max_backoff_s, 0.5),
    )
    url = cfg.url_for(GLOBAL_APP_ID)
    event = Event(
        id=f"check-{uuid.uuid4()}:HELLO",
        event="HELLO",
        app_id=GLOBAL_APP_ID,
        param={"account": report.account, "reason": "check"},
    )
    session = requests.Session()
    try:
        Reporter(cfg, session=session).send(event, deadline_s=deadline_s)
    except ReportError as e:
        return backend_result(url, e, has_token=report.has_token, token_from=token_source(report))
    finally:
        session.close()
    return backend_result(url, None, has_token=report.has_token)


def check_outbox(directory: str) -> CheckResult:
    """The outbox directory exists (or can be made) and takes a file."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".servo-check-") as f:
            f.write(b"check")
            f.flush()
    except OSError as e:
        return CheckResult(
            "outbox",
            Status.FAIL,
            f"{directory} is not writable: {e.strerror or e}",
            fix="point OPTUNE_OUTBOX_DIR at a writable directory (a volume, in a pod)",
        )
    return CheckResult("outbox", Status.OK, f"{directory} writable")
