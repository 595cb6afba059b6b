"""A "kubectl create token" stand-in for the credential tests: a script that prints a JWT with
the claims a test sets (or fails), and counts its runs."""

from __future__ import annotations

import base64
import json
import shlex
import sys
from pathlib import Path
from typing import Any

FAKE_KUBECTL = """\
import base64, json, pathlib, sys
state = pathlib.Path(sys.argv[1])
spec = json.loads(state.read_text())
with open(str(state) + ".runs", "a") as f:
    f.write("run\\n")
if spec.get("fail"):
    print(spec["fail"], file=sys.stderr)
    sys.exit(3)
def b64(doc):
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()
print(spec["raw"] if "raw" in spec else b64({"alg": "none"}) + "." + b64(spec["claims"]) + ".sig")
"""


def make_jwt(claims: dict[str, Any]) -> str:
    """The token FAKE_KUBECTL prints for these claims."""

    def b64(doc: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    return b64({"alg": "none"}) + "." + b64(claims) + ".sig"


class FakeKubectl:
    """A "kubectl create token" stand-in: prints a JWT with the claims a test sets, or fails."""

    def __init__(self, directory: Path) -> None:
        self.script = directory / "fake_kubectl.py"
        self.script.write_text(FAKE_KUBECTL)
        self.state = directory / "token-state.json"
        self.command = shlex.join([sys.executable, str(self.script), str(self.state)])

    def prints(self, **claims: Any) -> str:
        self.state.write_text(json.dumps({"claims": claims}))
        return make_jwt(claims)

    def prints_raw(self, text: str) -> None:
        self.state.write_text(json.dumps({"raw": text}))

    def fails(self, stderr: str) -> None:
        self.state.write_text(json.dumps({"fail": stderr}))

    @property
    def runs(self) -> int:
        runs = Path(str(self.state) + ".runs")
        return len(runs.read_text().splitlines()) if runs.exists() else 0
