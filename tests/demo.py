"""See the servo work without a cluster: `python -m tests.demo`.

Starts the Kubernetes API emulator and a recording backend on 127.0.0.1, runs the real `servo`
process against them (kubeconfig + OPTUNE_* env, as a user would), takes three job pods through
their lives (one succeeds, one fails, one is deleted before it runs) plus a pod that is not a job,
then prints each event the backend received and stops the servo with SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.fakes.backend import RecordingBackend
from tests.support.fakes.kubeapi import KubeEmulator
from tests.support.helpers import job_pod, set_running, set_terminated


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp, KubeEmulator() as emu, RecordingBackend() as be:
        kubeconfig = emu.write_kubeconfig(Path(tmp) / "kubeconfig")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPTUNE_")}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        env.update(
            OPTUNE_URL=be.url_template(),
            OPTUNE_ACCOUNT="demo",
            OPTUNE_AUTH_TOKEN="demo-token",
            POD_NAMESPACES="default",
            OPTUNE_STATS_PORT="0",
            OPTUNE_STATS_BIND="127.0.0.1",
            OPTUNE_OUTBOX_DIR=str(Path(tmp) / "outbox"),
            OPTUNE_METRICS_PORT="0",
            OPTUNE_METRICS_BIND="127.0.0.1",
        )
        print(
            f"API emulator {emu.url}, backend {be.url}; starting: servo --kubeconfig ...",
            file=sys.stderr,
        )
        servo = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "servo",
                "--kubeconfig",
                str(kubeconfig),
                "--log-format",
                "text",
            ],
            env=env,
        )
        try:
            # A pod created and deleted before the servo lists is invisible to it (as to any
            # client): start the jobs once the servo watches.
            watching = emu.wait_for(lambda: any(r.verb == "watch" for r in emu.requests), 30)
            if not (watching and be.wait_for(lambda: bool(be.events("HELLO")), 30)):
                print("servo did not say HELLO and start watching", file=sys.stderr)
                return 1
            emu.create_pod(job_pod("not-a-job", jobid=None))
            for name, jobid, code in (("train-ok", "JOB-1", 0), ("train-bad", "JOB-2", 1)):
                emu.create_pod(job_pod(name, jobid=jobid))
                emu.update_pod("default", name, set_running)
                emu.update_pod(
                    "default",
                    name,
                    lambda p, c=code: set_terminated(
                        p, exit_code=c, reason="Completed" if c == 0 else "Error"
                    ),
                )
            emu.create_pod(job_pod("never-ran", jobid="JOB-3"))
            emu.delete_pod("default", "never-ran", finalize=True)
            ok = be.wait_for(lambda: len(be.events("MEASUREMENT")) >= 3, 30)
        finally:
            servo.send_signal(signal.SIGTERM)
            servo.wait(timeout=30)
        be.wait_for(lambda: bool(be.events("GOODBYE")), 5)
        print("\n--- the backend received:", file=sys.stderr)
        for r in be.accepted:
            print(f"POST {r.path}  Authorization: {r.headers.get('Authorization')}")
            print("  " + json.dumps(r.json, indent=None, sort_keys=True))
        return 0 if ok and servo.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
