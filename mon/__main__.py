"""Start-up only: flags, config (exit 2 on problems), logging, then find -> wait -> read -> deliver.

After its cue the monitor always exits 0: a non-zero exit of a plain sidecar container would
mark the job's pod Failed.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping, Sequence

from mon import __version__
from mon.cgroup_paths import (
    PodCgroup,
    find_pod_cgroup,
    own_container_names,
    sandbox_ids_from_mountinfo,
)
from mon.config import Config, describe, load_config
from mon.cue import (
    CgroupSiblings,
    SharedNamespaceProcesses,
    install_stop_handlers,
    wait_for_cue,
)
from mon.errors import CgroupNotFoundError, ConfigError
from mon.finish import read_stats
from mon.logs import configure_logging, get_logger
from mon.samples import PodSampler
from mon.wire import Cue, Stats, StatsPost

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from mon.cue import SiblingWatch

logger = get_logger("mon")

EXIT_OK = 0
# The servo's code for a configuration error too (servo.core.errors); mon never imports servo,
# so the monitor, a program of its own, says it here.
EXIT_CONFIG = 2

ENV_HELP = """\
environment (see mon/README.md for every variable):
  OPTUNE_POD_UID        pod UID (Downward API metadata.uid); OPTUNE_SELF_ID is the older name
  OPTUNE_CGROUP_PATH    explicit pod cgroup path below each controller (default: find by UID)
  OPTUNE_SYS_ROOT       host /sys mounted in the pod (default /rsys)
  OPTUNE_TERMINATION_LOG  termination message file (default /dev/termination-log)
  OPTUNE_STATS_URL      stats receiver URL (default http://$REPORT_TARGET or $SELF_IP:8080/)
  OPTUNE_STATS_TOKEN_FILE  projected token sent to the receiver (/var/run/secrets/servo/token)
  OPTUNE_POLL_INTERVAL  seconds between checks for exited containers (default 1)
"""


def build_parser() -> argparse.ArgumentParser:
    import argparse  # only for flags: the injected monitor runs without any

    parser = argparse.ArgumentParser(
        prog="servo-mon",
        description="Wait for the job's containers to exit, read the pod cgroup, report it.",
        epilog=ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--once", action="store_true", help="read and deliver now instead of waiting for a cue"
    )
    return parser


def locate(config: Config) -> tuple[PodCgroup | None, str]:
    """The pod cgroup, or None and the reason (logged at ERROR; the monitor carries on)."""
    try:
        pod = find_pod_cgroup(
            cgroup_root=config.sys_root / "fs" / "cgroup",
            pod_uid=config.pod_uid,
            explicit_path=config.cgroup_path,
            max_depth=config.search_depth,
        )
    except CgroupNotFoundError as e:
        logger.error("pod cgroup not found", extra={"error": str(e), "tried": list(e.tried)})
        return None, f"pod cgroup not found ({len(e.tried)} paths tried, see the monitor's log)"
    logger.info("pod cgroup found", extra={"path": str(pod.path), "cgroup": pod.version})
    return pod, ""


def _read_proc(config: Config, name: str) -> str:
    try:
        # Paths in these files are the host's bytes, not necessarily UTF-8.
        return (config.proc_root / "self" / name).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def container_layout(config: Config, pod: PodCgroup | None) -> CgroupSiblings | None:
    """The pod's container cgroups: which is the monitor's own, the sandbox's, the job's."""
    if pod is None:
        return None
    sandbox = sandbox_ids_from_mountinfo(_read_proc(config, "mountinfo"))
    own = own_container_names(_read_proc(config, "cgroup"))
    logger.info(
        "pod containers",
        extra={"sandbox_ids": sorted(sandbox), "own_names": sorted(own)},
    )
    return CgroupSiblings(pod, own_names=own, sandbox_ids=sandbox, own_pid=os.getpid())


def sibling_watch(config: Config, layout: CgroupSiblings | None) -> SiblingWatch | None:
    """How this monitor notices that the other containers exited, if at all."""
    if not config.watch_siblings:
        return None
    if config.shared_pid_namespace:
        return SharedNamespaceProcesses(own_pid=os.getpid())
    return layout


def wait(
    config: Config,
    *,
    stop: threading.Event,
    layout: CgroupSiblings | None,
    sampler: PodSampler | None,
) -> Cue:
    """Block for the cue. A plain-style monitor never waits unboundedly: nobody signals it.

    OPTUNE_WATCH_SIBLINGS=false is taken as the operator's word that SIGTERM will come.
    """
    watch = sibling_watch(config, layout)
    plain = config.sidecar_style == "plain"
    if plain and config.watch_siblings and watch is None:
        logger.warning("plain-style monitor cannot watch its siblings; reporting now")
        return "deadline"
    logger.info("waiting for cue", extra={"poll_interval_s": config.poll_interval_s})
    return wait_for_cue(
        stop=stop,
        poll_interval_s=config.poll_interval_s,
        siblings=watch,
        sample=sampler.sample if sampler is not None else None,
        unseen_give_up_s=config.unseen_wait_s if plain and watch is not None else None,
    )


def run(config: Config, *, stop: threading.Event, once: bool = False) -> int:
    """Find the pod cgroup, wait for the cue, read, deliver. Returns the exit status."""
    pod, why = locate(config)
    layout = container_layout(config, pod)
    sampler = None
    if pod is not None and layout is not None:
        # Its first sample is the wait's first poll, taken at once.
        sampler = PodSampler(pod, layout, clk_tck=os.sysconf("SC_CLK_TCK"))
    cue: Cue = "once" if once else wait(config, stop=stop, layout=layout, sampler=sampler)
    logger.info("cue received", extra={"cue": cue})
    stats = read_stats(
        cgroup_root=config.sys_root / "fs" / "cgroup",
        pod=pod,
        why=why,
        layout=layout,
        sampler=sampler,
        cue=cue,
    )
    logger.info("pod read", extra={"stats": stats})
    deliver(config, stats)
    return EXIT_OK


def deliver(config: Config, stats: Stats) -> None:
    """Termination message first (it needs nothing), then the POST when a URL is known."""
    # Imported here, not at start: http.client is a good part of the monitor's start-up time
    # and idle memory, and only needed once.
    from mon.deliver import post_stats, write_termination_message

    write_termination_message(config.termination_log, stats)
    if not config.stats_url:
        logger.info("no stats URL; the termination message is the only channel")
        return
    body: StatsPost = {"id": config.pod_uid, "stats": stats}
    post_stats(
        url=config.stats_url,
        body=body,
        token_file=config.stats_token_file,
        timeout_s=config.post_timeout_s,
        attempts=config.post_attempts,
        deadline_s=config.post_deadline_s,
    )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    once = bool(args) and build_parser().parse_args(args).once
    try:
        config = load_config(os.environ if environ is None else environ)
    except ConfigError as e:
        print(f"servo-mon: configuration error:\n{e}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(debug=config.debug, fmt=config.log_format, pod_uid=config.pod_uid)
    logger.info("monitor starting", extra={"config": describe(config), "version": __version__})
    stop = threading.Event()
    install_stop_handlers(stop)
    try:
        return run(config, stop=stop, once=once)
    except Exception as e:
        # Never fail the job's pod because of the monitor, and still say why nothing came.
        logger.exception("monitor failed")
        report_failure(config, f"monitor failed: {type(e).__name__}: {e}"[:300])
        return EXIT_OK


def report_failure(config: Config, reason: str) -> None:
    """A termination message with every figure null for `reason`; never raises."""
    try:
        from mon.deliver import write_termination_message

        stats = read_stats(
            cgroup_root=config.sys_root / "fs" / "cgroup", why=reason, cue="deadline"
        )
        write_termination_message(config.termination_log, stats)
    except Exception:
        logger.exception("failure report not written")


if __name__ == "__main__":
    sys.exit(main())
