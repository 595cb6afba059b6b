"""Start-up only: flags, config (exit 2 on problems), logging, then find -> wait -> read -> deliver.

After its cue the monitor always exits 0: a non-zero exit of a plain sidecar container would
mark the job's pod Failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence

from mon import __version__
from mon.cgroup_paths import (
    PodCgroup,
    detect_version,
    find_pod_cgroup,
    own_container_names,
    sandbox_ids_from_mountinfo,
)
from mon.cgroup_read import (
    figures_unavailable,
    read_memory_current,
    read_pod_figures,
)
from mon.config import Config, describe, load_config
from mon.cue import (
    CgroupSiblings,
    Sampler,
    SharedNamespaceProcesses,
    install_stop_handlers,
    wait_for_cue,
)
from mon.errors import CgroupNotFoundError, ConfigError
from mon.footprint import own_max_rss_bytes, own_rss_bytes
from mon.logs import configure_logging
from mon.stats import build_stats
from mon.wire import Cue, Stats, StatsPost

logger = logging.getLogger("mon")

EXIT_OK = 0
EXIT_CONFIG = 2

ENV_HELP = """\
environment (see mon/README.md for every variable):
  OPTUNE_POD_UID        pod UID (Downward API metadata.uid); OPTUNE_SELF_ID is the older name
  OPTUNE_CGROUP_PATH    explicit pod cgroup path below each controller (default: find by UID)
  OPTUNE_SYS_ROOT       host /sys mounted in the pod (default /rsys)
  OPTUNE_TERMINATION_LOG  termination message file (default /dev/termination-log)
  OPTUNE_STATS_URL      stats receiver URL (default http://$REPORT_TARGET or $SELF_IP:8080/)
  OPTUNE_STATS_TOKEN    bearer token for the receiver
  OPTUNE_POLL_INTERVAL  seconds between checks for exited containers (default 1)
"""


def build_parser() -> argparse.ArgumentParser:
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
        return (config.proc_root / "self" / name).read_text()
    except OSError:
        return ""


def sibling_watch(
    config: Config, pod: PodCgroup | None
) -> CgroupSiblings | (SharedNamespaceProcesses) | None:
    """How this monitor notices that the other containers exited, if at all."""
    if not config.watch_siblings:
        return None
    if config.shared_pid_namespace:
        return SharedNamespaceProcesses(own_pid=os.getpid())
    if pod is None:
        return None
    sandbox = sandbox_ids_from_mountinfo(_read_proc(config, "mountinfo"))
    own = own_container_names(_read_proc(config, "cgroup"))
    logger.info(
        "watching sibling containers",
        extra={"sandbox_ids": sorted(sandbox), "own_names": sorted(own)},
    )
    return CgroupSiblings(pod, own_names=own, sandbox_ids=sandbox, own_pid=os.getpid())


def run(config: Config, *, stop: threading.Event, once: bool = False) -> int:
    """Find the pod cgroup, wait for the cue, read, deliver. Returns the exit status."""
    pod, why = locate(config)
    sampler: Sampler | None = None
    if pod is not None and pod.version == "v2":
        found = pod
        sampler = Sampler(lambda: read_memory_current(found))
        sampler.sample()
    watch = sibling_watch(config, pod)
    cue: Cue = "once"
    if not once:
        logger.info("waiting for cue", extra={"poll_interval_s": config.poll_interval_s})
        cue = wait_for_cue(
            stop=stop,
            poll_interval_s=config.poll_interval_s,
            siblings=watch.running if watch is not None else None,
            sample=sampler.sample if sampler is not None else None,
        )
    logger.info("cue received", extra={"cue": cue})
    if pod is None:
        pod, why = locate(config)
    stats = read_stats(
        config, pod=pod, why=why, sampled_max_memory=sampler.max_bytes if sampler else None, cue=cue
    )
    deliver(config, stats)
    return EXIT_OK


def read_stats(
    config: Config, *, pod: PodCgroup | None, why: str, sampled_max_memory: int | None, cue: Cue
) -> Stats:
    """Read the pod cgroup (or say why not) and add the monitor's own footprint."""
    if pod is None:
        figures = figures_unavailable(why)
    else:
        figures = read_pod_figures(
            pod, sampled_max_memory=sampled_max_memory, clk_tck=os.sysconf("SC_CLK_TCK")
        )
    stats = build_stats(
        figures=figures,
        cgroup=pod.version if pod else detect_version(config.sys_root / "fs" / "cgroup"),
        cgroup_path=str(pod.path) if pod else "",
        monitor_rss=own_rss_bytes(),
        monitor_max_rss=own_max_rss_bytes(),
        cue=cue,
    )
    logger.info("pod read", extra={"stats": stats})
    return stats


def deliver(config: Config, stats: Stats) -> None:
    """Termination message first (it needs nothing), then the POST when a URL is known."""
    # Imported here, not at start: requests and tenacity are most of the monitor's start-up
    # time and idle memory, and a job that ends at once must not find it still importing.
    from mon.deliver import post_stats, write_termination_message

    write_termination_message(config.termination_log, stats)
    if not config.stats_url:
        logger.info("no stats URL; the termination message is the only channel")
        return
    body: StatsPost = {"id": config.pod_uid, "stats": stats}
    post_stats(
        url=config.stats_url,
        body=body,
        token=config.stats_token,
        timeout_s=config.post_timeout_s,
        attempts=config.post_attempts,
        deadline_s=config.post_deadline_s,
    )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
        return run(config, stop=stop, once=args.once)
    except Exception:
        # Never fail the job's pod because of the monitor.
        logger.exception("monitor failed")
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
