"""example/collector.yaml as the collector reads it: its args and env (the Secret's token
filled in) start a collector that listens on every address with that token required, and the
same args without a token are refused with exit 2 rather than listening open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from servo.__main__ import build_parser
from servo.collector.cli import collector_from_args
from servo.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def container() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml")
    docs = yaml.safe_load_all((ROOT / "example" / "collector.yaml").read_text())
    [deploy] = [d for d in docs if d and d["kind"] == "Deployment"]
    [c] = deploy["spec"]["template"]["spec"]["containers"]
    return dict(c)


def env_of(c: dict[str, Any], token: str | None) -> dict[str, str]:
    env = {e["name"]: e["value"] for e in c["env"] if "value" in e}
    [secret] = [e for e in c["env"] if "valueFrom" in e]
    assert secret["name"] == "COLLECTOR_TOKENS"
    assert not secret["valueFrom"]["secretKeyRef"].get("optional", False)
    if token is not None:
        env["COLLECTOR_TOKENS"] = token
    return env


def args_of(c: dict[str, Any], tmp_path: Path) -> list[str]:
    args = list(c["args"])
    args[args.index("--db") + 1] = str(tmp_path / "servo.db")
    return args


def test_the_example_starts_listening_everywhere_with_its_token(tmp_path: Path) -> None:
    c = container()
    collector = collector_from_args(
        build_parser().parse_args(args_of(c, tmp_path)), env_of(c, "t0ken")
    )
    try:
        assert (collector.bind, collector.port) == ("0.0.0.0", 8090)
        assert [g.token for g in collector.grants] == ["t0ken"]
    finally:
        collector.store.close()


def test_the_example_without_a_token_is_refused(tmp_path: Path) -> None:
    c = container()
    with pytest.raises(ConfigError, match="without tokens"):
        collector_from_args(build_parser().parse_args(args_of(c, tmp_path)), env_of(c, None))
