"""Fault scenarios at sizes CI cannot afford: the servo as a process against the API emulator
and the bundled collector behind a flaky proxy; prints one summary row per scenario.

    python -m bench.bench_faults [--jobs 1000] [--seed 1] [--scenario NAME ...] [--keep] [--smoke]

`--jobs` scales every scenario (the graceful-shutdown and patch-outage ones use a tenth, the
SIGTERM wait alone takes the 20 s grace). The scenarios are those of
tests/support/faults/scenarios.py;
`lost` is checked against `known` (the pods the scenario expects to lose: without the finalizer
guard, pods that finished and were deleted while the servo was down). Exit 1 when any row is
not OK.

`--smoke` (CI): two scenarios (backend-down, api-chaos) with 5 jobs each; the table printed,
its OK column not checked (tests/faults asserts the exact counts).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from bench.verdict import verdict
from tests.support.faults.outcome import Outcome
from tests.support.faults.scenarios import SCENARIOS

# Jobs per scenario as a share of --jobs (the slow or narrow ones run fewer).
SHARE = {
    "graceful-shutdown": 0.1,
    "patch-503-outage": 0.1,
    "patch-503-outage-guard": 0.1,
    "backlog-restart": 0.3,
}
SMOKE_SCENARIOS, SMOKE_JOBS = ["backend-down", "api-chaos"], 5
COLUMNS = (
    "scenario",
    "jobs",
    "stored",
    "lost",
    "known",
    "duplicated",
    "deliveries",
    "attempts",
    "kills",
    "seconds",
    "ok",
)


def row(out: Outcome) -> tuple[str, ...]:
    return (
        out.scenario,
        str(out.jobs),
        str(out.stored),
        str(out.lost),
        str(out.known_lost),
        str(out.duplicated),
        str(out.deliveries),
        str(out.attempts),
        str(out.kills),
        f"{out.seconds:.1f}",
        "OK" if out.ok else "NO",
    )


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    lines = []
    for r in [COLUMNS, *rows]:
        cells = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        lines.append("  ".join(cells))
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--jobs", type=int, default=1000, help="jobs per scenario (default 1000)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this one (repeatable); default: all",
    )
    ap.add_argument(
        "--kills",
        type=int,
        default=None,
        help="SIGKILLs in servo-killed (default: one per 25 jobs, at least 3)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the work directories (logs)")
    ap.add_argument("--smoke", action="store_true", help="CI: two small scenarios, not checked")
    args = ap.parse_args()
    if args.smoke:
        args.jobs, args.scenario = SMOKE_JOBS, args.scenario or SMOKE_SCENARIOS
    logging.disable(logging.WARNING)  # the in-process collector's lines; the servo logs to files
    names = args.scenario or list(SCENARIOS)
    base = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    rows: list[tuple[str, ...]] = []
    notes: list[str] = []
    for name in names:
        jobs = max(3, round(args.jobs * SHARE.get(name, 1.0)))
        kwargs: dict[str, int] = {"jobs": jobs, "seed": args.seed}
        if name == "servo-killed":
            kwargs["kills"] = args.kills or max(3, jobs // 25)
        print(f"running {name} with {jobs} jobs ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            out = SCENARIOS[name](base / name, **kwargs)
        except AssertionError as e:
            print(f"  {name} did not settle: {str(e)[:2000]}", file=sys.stderr)
            rows.append(
                (
                    name,
                    str(jobs),
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    f"{time.monotonic() - started:.1f}",
                    "NO",
                )
            )
            continue
        rows.append(row(out))
        shown = {
            k: v
            for k, v in out.notes.items()
            if k not in ("deleted_while_down", "left_in_outbox", "expected_in_outbox")
        }
        notes.append(
            f"{name}: {shown}" + (f"; servo errors: {out.errors[:3]}" if out.errors else "")
        )
    print(table(rows))
    print()
    for n in notes:
        print(n)
    print(
        f"\nseed {args.seed}; work directories under {base}" + ("" if args.keep else " (removed)")
    )
    if not args.keep:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    ok = all(r[-1] == "OK" for r in rows)
    print(
        f"fault scenarios, every row OK | all OK | {sum(r[-1] == 'OK' for r in rows)} of "
        f"{len(rows)} OK | {verdict(ok, smoke=args.smoke)}"
    )
    return 0 if ok or args.smoke else 1


if __name__ == "__main__":
    sys.exit(main())
