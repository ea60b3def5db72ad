"""`make bench`: every scenario against its baseline in one run; writes docs/benchmarks.md.

    python -m bench.run                 # the full suite (about 25 minutes, 10 of them memory)
    python -m bench.run --quick         # a smoke run with small numbers (not for the docs)

The ratios are what to read: absolute numbers move with the machine and with whatever else it
is doing, ratios taken in one run much less.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import tempfile
from pathlib import Path

from bench import history, scenarios
from bench.common import REPO, Server, cpu_jiffies, machine, percentile, steal_percent

TARGETS_NOTE = (
    "Targets come from the speed issue: single POST >= 1.5x the bare endpoint, batch POST >= "
    "0.6x raw unnest INSERT, drain >= 0.5x the raw loop and >= 1.5x PgQueuer, pickup p50 <= "
    "1.5 ms and p99 <= 5 ms at 200 jobs/s, p99 <= 10 ms at 1,000 jobs/s."
)


def _ratio_met(row: scenarios.Row) -> bool | None:
    if row.met is not None:
        return row.met
    if not row.target.startswith(">="):
        return None
    return row.ratio >= float(row.target.removeprefix(">=").strip().rstrip("x"))


def _fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:,.2f}" if unit == "ms" else f"{value:,.0f}"


def write_report(ctx: scenarios.Context, facts: dict[str, str], command: str, out: Path) -> None:
    lines = [
        "# Benchmarks",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with `{command}` (the whole "
        "suite in one run; each scenario measures its baseline right after JQS).",
        "",
        f"- Machine: {facts['cpu']}, {facts['cores']} cores, {facts['os']}",
        f"- Python {facts['python']}; PostgreSQL {facts['postgres']} on the same machine, "
        f"`synchronous_commit={facts['synchronous_commit']}` (claims, JQS's and the raw "
        "baselines', commit without waiting for the WAL flush; see docs/guarantees.md)",
        "- Load: wrk (HTTP), JQS's own open-loop client for latency; everything on loopback.",
        *_steal_line(ctx),
        "",
        "| scenario | JQS | baseline | ratio | target | met | baseline is | notes |",
        "|---|---:|---:|---:|---|---|---|---|",
    ]
    for row in ctx.rows:
        met = _ratio_met(row)
        mark = "" if met is None else ("yes" if met else "**no**")
        ratio = (
            row.ratio
            if row.higher_is_better
            else (row.baseline / row.value if row.value else float("nan"))
        )
        lines.append(
            f"| {row.scenario} | {_fmt(row.value, row.unit)} | {_fmt(row.baseline, row.unit)} | "
            f"{ratio:.2f}x | {row.target} | {mark} | {row.baseline_name} | {row.note} |"
        )
    lines += [
        "",
        TARGETS_NOTE,
        "",
        "For latency rows the ratio is baseline / JQS (above 1 is faster than the baseline).",
    ]
    p99_lines: list[str] = []
    late_lines: list[str] = []
    for rate in (200, 1000):
        data = ctx.extra.get(f"latency_{rate}")
        if not isinstance(data, dict):
            continue
        if isinstance(data.get("run_p99"), dict):
            p99 = data["run_p99"]
            p99_lines += [
                "",
                f"Pickup p99 at {rate} jobs/s, run by run (ms; the table pools every job): "
                "JQS "
                + ", ".join(f"{v:.2f}" for v in p99["jqs"])
                + "; raw "
                + ", ".join(f"{v:.2f}" for v in p99["raw"])
                + ".",
            ]
        if isinstance(data.get("late_wakeups"), dict):
            late = data["late_wakeups"]
            late_lines += [
                "",
                f"Beside the runs at {rate} jobs/s, a process that only sleeps 1 ms at a time "
                "(`bench/stalls.py`) was woken more than 3 ms late "
                + " and ".join(
                    f"{sum(v > 3 for v in late[key])} times while {label} were measured "
                    f"(worst {max(late[key], default=0.0):.1f} ms)"
                    for key, label in (("jqs", "JQS's jobs"), ("raw", "the baseline's"))
                )
                + ". Such a stall holds up every process on the machine, and each job in "
                "flight waits it out.",
            ]
    lines += p99_lines + late_lines
    single = ctx.extra.get("single_runs")
    if isinstance(single, dict):
        lines += [
            "",
            "Single POST runs (requests/s, taking turns; the table shows the medians): "
            + "; ".join(
                f"{label} " + ", ".join(f"{v:,.0f}" for v in single[key])
                for key, label in (
                    ("jqs", "JQS"),
                    ("jqs_quiet", "JQS at warning"),
                    ("baseline", "baseline"),
                )
            )
            + ".",
        ]
    batch = ctx.extra.get("batch_runs")
    if isinstance(batch, dict):
        lines += [
            "",
            "Batch POST runs (jobs/s, alternating; the table shows the medians): JQS "
            + ", ".join(f"{v:,.0f}" for v in batch["jqs"])
            + "; raw unnest INSERT "
            + ", ".join(f"{v:,.0f}" for v in batch["raw"])
            + ".",
        ]
    lines += _others_section(ctx)
    lines += _history_section(ctx)
    lines += _profile_section(ctx)
    lines += _memory_section(ctx)
    lines += ["", "![JQS against its baselines](benchmarks.png)", ""]
    out.write_text("\n".join(lines) + "\n")


def _steal_line(ctx: scenarios.Context) -> list[str]:
    steal = ctx.extra.get("steal")
    if not isinstance(steal, dict) or not steal:
        return []
    return [
        "- CPU time taken by the hypervisor for other guests (steal), by scenario: "
        + ", ".join(f"{name} {pct:.0f}%" for name, pct in steal.items())
        + ". Where it is high, absolute numbers fall and vary more; JQS and its baseline "
        "share it, run by run."
    ]


def _others_section(ctx: scenarios.Context) -> list[str]:
    lines = ["", "## Other PostgreSQL queues for Python", ""]
    raw = ctx.extra.get("raw_drain")
    drain_row = next((r for r in ctx.rows if r.scenario.startswith("drain")), None)
    lines += [
        "Each installed from PyPI into a virtualenv of its own by the bench, with its best "
        "documented settings (see `bench/others/`), against a fresh database of the same "
        "server. PgQueuer's drains alternate round by round with JQS's and the raw loop's "
        "(scenario 3), so their ratio compares runs minutes apart. Latency is commit of the "
        "enqueue to handler start, taken the same way as for JQS.",
        "",
        "| system | version | drain jobs/s | JQS drain / it | p50 @200/s | p99 @200/s | "
        "p50 @1000/s | p99 @1000/s | settings |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    jqs_lat = {rate: ctx.extra.get(f"latency_{rate}") for rate in (200, 1000)}
    if drain_row is not None:
        cells = []
        for rate in (200, 1000):
            data = jqs_lat[rate]
            values = data["jqs"]["latencies"] if isinstance(data, dict) else []  # type: ignore[index]
            cells += (
                [f"{percentile(values, 50):.2f}", f"{percentile(values, 99):.2f}"]
                if values
                else ["", ""]
            )
        lines.append(
            f"| JQS | this repo | {drain_row.value:,.0f} | 1.00x | "
            + " | ".join(cells)
            + " | one worker, concurrency 100 |"
        )
    for system in ("pgqueuer", "procrastinate"):
        data = ctx.extra.get(system)
        if not isinstance(data, dict):
            continue
        drain = data.get("drain", {})
        if "error" in drain:
            lines.append(f"| {system} | | failed: {drain['error']} | | | | | | |")
            continue
        speed = float(drain.get("jobs_per_s", float("nan")))
        ratio = drain_row.value / speed if drain_row and speed else float("nan")
        cells = []
        for rate in (200, 1000):
            lat = data.get(f"latency_{rate}", {})
            cells += [
                f"{lat.get('p50_ms', float('nan')):.2f}",
                f"{lat.get('p99_ms', float('nan')):.2f}",
            ]
        lines.append(
            f"| {system} | {drain.get('version', '')} | {speed:,.0f} | {ratio:.2f}x | "
            + " | ".join(cells)
            + f" | {drain.get('settings', '')} |"
        )
    if raw:
        lines += [
            "",
            f"The raw asyncpg claim/complete loop drained {raw:,.0f} jobs/s in the same run.",
        ]
    lines += _drain_runs(ctx)
    return lines


def _drain_runs(ctx: scenarios.Context) -> list[str]:
    """Every drain run behind the medians above, so their spread is on record."""
    runs: dict[str, object] = {}
    ours = ctx.extra.get("drain_runs")
    if isinstance(ours, dict):
        runs["JQS"] = ours["jqs"]
        runs["raw asyncpg loop"] = ours["raw"]
    for system in ("pgqueuer", "procrastinate"):
        data = ctx.extra.get(system)
        if isinstance(data, dict) and isinstance(data.get("drain"), dict):
            runs[system] = data["drain"].get("runs", [data["drain"].get("jobs_per_s")])
    if not runs:
        return []
    lines = ["", "Drain runs (jobs/s; the tables show the median of each):", ""]
    for name, values in runs.items():
        shown = ", ".join(f"{float(v):,.0f}" for v in values)  # type: ignore[attr-defined]
        lines.append(f"- {name}: {shown}")
    return lines


def _history_section(ctx: scenarios.Context) -> list[str]:
    plans = ctx.extra.get("history_plans")
    runs = ctx.extra.get("history_runs")
    if not isinstance(plans, dict) or not isinstance(runs, dict):
        return []

    def listed(values: list[float], unit: str) -> str:
        return ", ".join(_fmt(v, unit) for v in values)

    ms, rates = runs["claim_path_ms"], runs["drain_jobs_per_s"]
    lines = [
        "",
        "## As history grows",
        "",
        "The same work on an empty `jobs` table and on one that also holds a million "
        f"completed jobs, {history.ROUNDS} rounds, each side first in every other one. "
        "Each run starts from a freshly vacuumed and checkpointed table, times "
        f"{history.CYCLES} cycles after {history.WARMUP} untimed ones, and autovacuum is "
        "off while it runs, so what is timed is the claim path, "
        "not a vacuum that happened to start (on the big table a vacuum scans a million "
        "rows' indexes; migration 0004 makes it run by churn, at most once a minute). "
        "The claim reads only the partial index of queued jobs and a completion looks its "
        "jobs up by key, so finished rows stay out of the hot path; what history adds is "
        "bigger indexes to insert into. Single runs vary by a third on this 2-core machine "
        "(all runs are listed); the table gives the medians.",
        "",
        f"- claim + complete of 100 jobs (ms), empty: {listed(ms['empty'], 'ms')}; "
        f"with history: {listed(ms['big'], 'ms')}",
        f"- one worker draining (jobs/s), empty: {listed(rates['empty'], 'jobs/s')}; "
        f"with history: {listed(rates['big'], 'jobs/s')}",
        "",
        "Plans on the big table (`EXPLAIN (ANALYZE, BUFFERS)`, one claim of 100 and its "
        "completion, rolled back; the generic plans JQS's sessions run):",
    ]
    for name in ("claim", "complete"):
        lines += ["", f"{name}:", "", "```", str(plans.get(name, "")), "```"]
    listings = ctx.extra.get("history_listings")
    if isinstance(listings, dict):
        lines += [
            "",
            "Listing on the big table (`GET /jobs` through the store, first page of 20, "
            "median of 10 runs, ms): "
            + ", ".join(f"{label} {_fmt(ms, 'ms')}" for label, ms in listings.items())
            + ". Each reads an index holding only what it asks for (migration 0005), so "
            "none walks the million finished rows.",
        ]
    return lines


def _profile_section(ctx: scenarios.Context) -> list[str]:
    profile = ctx.extra.get("profile")
    if not profile:
        return []
    lines = [
        "",
        "## Where a worker's time goes",
        "",
        "py-spy (`--format raw`, 250 Hz) on one `jqs worker` draining 20,000 no-op jobs; "
        "each sample is charged to its innermost frame in JQS, asyncpg or structlog (else "
        "the leaf); start-up imports are left out. `Runner.run` is the event loop itself "
        "(uvloop, in C: sockets, callbacks, and waiting for the database).",
        "",
        "| share | frame |",
        "|---:|---|",
    ]
    lines += [f"| {share:.1%} | `{name}` |" for name, share in profile]  # type: ignore[union-attr]
    logs = ctx.extra.get("drain_info_logs")
    if logs:
        lines += [
            "",
            f"With the default `JQS_LOG_LEVEL=info` (two JSON lines per job) the same "
            f"drain ran at {logs:,.0f} jobs/s.",
        ]
    return lines


def _memory_section(ctx: scenarios.Context) -> list[str]:
    mem = ctx.extra.get("memory")
    if not isinstance(mem, dict):
        return []
    change = (mem["last"] - mem["first"]) / mem["first"]
    verdict = "within" if abs(change) <= 0.20 else "**outside**"
    return [
        "",
        "## Memory",
        "",
        f"`jqs serve` (API and workers) under a steady 200 jobs/s for {mem['minutes']:g} "
        f"minutes: resident memory {mem['first']:.1f} MiB in the first minute, "
        f"{mem['last']:.1f} MiB in the last ({change:+.1%}, {verdict} the 20% bound).",
    ]


def write_chart(ctx: scenarios.Context, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in ctx.rows if r.higher_is_better and r.baseline]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [r.scenario.split(" (")[0] for r in rows]
    axes[0].barh(names, [r.ratio for r in rows], color="#3b7dd8")
    axes[0].axvline(1.0, color="black", linewidth=1)
    axes[0].set_xlabel("JQS / baseline (higher is better)")
    axes[0].invert_yaxis()
    lat = [r for r in ctx.rows if r.scenario.startswith("pickup latency")]
    labels = [r.scenario.replace("pickup latency ", "").replace(" (ms)", "") for r in lat]
    y = range(len(lat))
    axes[1].barh([i - 0.2 for i in y], [r.value for r in lat], height=0.4, label="JQS")
    axes[1].barh([i + 0.2 for i in y], [r.baseline for r in lat], height=0.4, label="raw asyncpg")
    axes[1].set_yticks(list(y), labels)
    axes[1].set_xlabel("pickup latency, ms (lower is better)")
    axes[1].invert_yaxis()
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110, bbox_inches="tight")


async def main() -> None:
    parser = argparse.ArgumentParser(description="JQS benchmarks")
    parser.add_argument("--quick", action="store_true", help="small numbers, a smoke run")
    parser.add_argument("--memory-minutes", type=float, default=10.0)
    parser.add_argument("--skip", default="", help="comma-separated scenario names to skip")
    parser.add_argument("--dsn", default=None, help="PostgreSQL server (default: embedded)")
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    server = Server(args.dsn)
    server.start()
    logs = Path(tempfile.mkdtemp(prefix="jqs-bench-logs-"))
    ctx = scenarios.Context(server=server, logs=logs, quick=args.quick)
    steps = [
        ("single_post", scenarios.single_post),
        ("batch_post", scenarios.batch_post),
        ("drain", scenarios.drain),
        ("end_to_end", scenarios.end_to_end),
        ("latency", scenarios.pickup_latency),
        ("history", history.history),
        ("profile", scenarios.profile_drain),
        ("others", scenarios.others),
    ]
    steal: dict[str, float] = {}
    ctx.extra["steal"] = steal
    try:
        facts = {**machine(), **await server.facts()}
        for name, step in steps:
            if name in skip:
                continue
            print(f"== {name}", flush=True)
            printed = len(ctx.rows)
            began = cpu_jiffies()
            try:
                await step(ctx)
            except Exception as exc:  # one broken scenario must not lose the others' numbers
                print(f"   {name} failed: {exc!r}", flush=True)
                ctx.extra[f"failed_{name}"] = repr(exc)
            steal[name] = steal_percent(began, cpu_jiffies())
            for row in ctx.rows[printed:]:
                print(
                    f"   {row.scenario}: {row.value:,.2f} vs {row.baseline:,.2f} ({row.ratio:.2f}x)"
                )
        if "memory" not in skip:
            print("== memory", flush=True)
            began = cpu_jiffies()
            await scenarios.memory(ctx, 1.0 if args.quick else args.memory_minutes)
            steal["memory"] = steal_percent(began, cpu_jiffies())
    finally:
        server.stop()
    command = "make bench" if not args.quick else "python -m bench.run --quick"
    out = Path(args.out)
    write_report(ctx, facts, command, out)
    write_chart(ctx, out.with_suffix(".png"))
    (logs / "extra.json").write_text(
        json.dumps(
            {k: v for k, v in ctx.extra.items() if k not in ("latency_200", "latency_1000")},
            default=str,
            indent=1,
        )
    )
    print(f"wrote {out} and {out.with_suffix('.png')}; logs in {logs}")


if __name__ == "__main__":
    asyncio.run(main())
