"""`make bench`: every scenario against its baseline in one run; writes docs/benchmarks.md.

    python -m bench.run                 # the full suite (about 25 minutes, 10 of them memory)
    python -m bench.run --quick         # a smoke run with small numbers (not for the docs)
    python -m bench.run --dsn postgresql://postgres@127.0.0.1:5432/postgres
                                        # on an existing server instead of an embedded one
    python -m bench.run --also-on postgresql://postgres@127.0.0.1:5432/postgres
                                        # and the drain scenario on that server as well

On an existing server the bench creates databases of its own (`jqs_bench_<pid>_...`) and
drops them when it ends; it touches no other database and changes no setting.

The ratios are what to read: absolute numbers move with the machine and with whatever else it
is doing, ratios taken in one run much less.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import re
import statistics
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import dashboard, drain_pairs, history, in_transaction, pooler, scenarios
from bench.common import (
    REPO,
    Server,
    cpu_jiffies,
    machine,
    percentile,
    shown_args,
    steal_percent,
)

TARGETS_NOTE = (
    "JQS's performance targets: single POST >= 1.5x the bare endpoint (>= 0.95x of itself "
    "with an API key), batch POST >= 0.6x "
    "a raw unnest INSERT, drain >= 0.5x the raw loop and >= 2x PgQueuer, the drain at the "
    "default log level >= 0.85x the same at warning, single POST and the drain with metrics "
    "on >= 0.95x the same with JQS_METRICS=false, a drain whose jobs all fail once >= "
    "0.5x one whose jobs all succeed, pickup p50 <= 1.5 ms and p99 <= 5 ms at 200 jobs/s, "
    "p99 <= 10 ms at 1,000 jobs/s, and a million finished jobs costing a drain at most 10% "
    "more database time. The raw baselines (`bench/raw_queue.py`) work on a minimal table: "
    "id, status, payload, result and timestamps, with one partial index on queued rows. "
    "Their claim/complete loops hand each payload, decoded, to a no-op handler and write "
    "each job's own result, as any queue must."
)


_COST_TARGET = re.compile(r"<=\s*[\d.]+x")


def _ratio_met(row: scenarios.Row) -> bool | None:
    if row.met is not None:
        return row.met
    if not row.target.startswith(">="):
        return None
    return row.ratio >= float(row.target.removeprefix(">=").strip().rstrip("x"))


def _shown_ratio(row: scenarios.Row) -> float:
    """JQS / baseline, in the direction the row's target is stated: a cost held to "<= N x"
    its baseline shows JQS / baseline; other lower-is-better rows (latencies) show baseline /
    JQS, so that above 1 is better there too."""
    if row.higher_is_better or _COST_TARGET.match(row.target):
        return row.ratio
    return 1 / row.ratio if row.ratio else math.nan


def _fmt(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    if unit == "ms":
        return f"{value:,.2f}"
    return f"{value:,.1f}" if unit == "us" else f"{value:,.0f}"


def write_report(
    ctx: scenarios.Context,
    facts: dict[str, str],
    servers: list[dict[str, str]],
    command: str,
    out: Path,
) -> None:
    lines = [
        "# Benchmarks",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with `{command}` (every "
        "scenario below in one run; each measures its baselines beside JQS, taking turns).",
        "",
        f"- Machine: {facts['cpu']}, {facts['cores']} cores, {facts['os']}; Python "
        f"{facts['python']}",
        *(
            f"- {'Server' if i == 0 else 'Also, for the rows marked [' + srv['name'] + ']'}: "
            f"PostgreSQL {srv['postgres']}, {srv['where']}; {srv['settings']}"
            for i, srv in enumerate(servers)
        ),
        "- Claims, JQS's and the raw baselines', commit without waiting for the WAL flush; "
        "everything else waits for it (see docs/guarantees.md).",
        "- Load: wrk (HTTP), the bench's own open-loop producers for latency; everything on "
        "loopback.",
        *_steal_line(ctx),
        "",
        "| scenario | JQS | baseline | ratio | target | met | baseline is | notes |",
        "|---|---:|---:|---:|---|---|---|---|",
    ]
    for row in ctx.rows:
        met = _ratio_met(row)
        mark = "" if met is None else ("yes" if met else "**no**")
        ratio = _shown_ratio(row)
        lines.append(
            f"| {row.scenario} | {_fmt(row.value, row.unit)} | {_fmt(row.baseline, row.unit)} | "
            f"{ratio:.2f}x | {row.target} | {mark} | {row.baseline_name} | {row.note} |"
        )
    lines += [
        "",
        TARGETS_NOTE,
        "",
        "For latency rows the ratio is baseline / JQS (above 1 is faster than the baseline); "
        'for a cost held to at most a multiple of its baseline ("<= 1.2x"), JQS / baseline.',
    ]
    lines += _latency_lines(ctx)
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
    for key, what in (
        ("key_pairs", "an API key"),
        ("metrics_pairs", "metrics on"),
        ("servers_pairs", "JQS's connection limits on uvicorn"),
    ):
        pairs = ctx.extra.get(key)
        if isinstance(pairs, list) and pairs:
            lines += [
                "",
                f"Single POST with and without {what}, pair by pair (requests/s without / "
                "with; server CPU per request without / with, us): "
                + "; ".join(
                    f"{p['rate_base']:,.0f} / {p['rate_other']:,.0f}, "
                    f"{p['cpu_base']:.1f} / {p['cpu_other']:.1f}"
                    for p in pairs
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
    lines += _drain_runs(ctx)
    lines += _others_section(ctx)
    lines += _history_section(ctx)
    lines += _profile_section(ctx)
    lines += _memory_section(ctx)
    lines += ["", "![JQS against its baselines](benchmarks.png)", ""]
    out.write_text("\n".join(lines) + "\n")


LATENCY_LABELS = {"jqs": "JQS", "raw": "raw", "pgqueuer": "PgQueuer"}


def _latency_lines(ctx: scenarios.Context) -> list[str]:
    p99_lines: list[str] = []
    late_lines: list[str] = []
    for rate in (200, 1000):
        data = ctx.extra.get(f"latency_{rate}")
        if not isinstance(data, dict):
            continue
        p99, late = data["run_p99"], data["late_wakeups"]
        p99_lines += [
            "",
            f"Pickup p99 at {rate} jobs/s, run by run (ms; the table pools every job): "
            + "; ".join(
                f"{label} " + ", ".join(f"{v:.2f}" for v in p99[key])
                for key, label in LATENCY_LABELS.items()
                if p99.get(key)
            )
            + ".",
        ]
        late_lines += [
            "",
            f"Beside the runs at {rate} jobs/s, a process that only sleeps 1 ms at a time "
            "(`bench/stalls.py`) was woken more than 3 ms late "
            + ", ".join(
                f"{sum(v > 3 for v in late[key])} times while {label}'s jobs were measured "
                f"(worst {max(late[key], default=0.0):.1f} ms)"
                for key, label in LATENCY_LABELS.items()
                if p99.get(key)
            )
            + ". Such a stall holds up every process on the machine, and each job in "
            "flight waits it out.",
        ]
    return p99_lines + late_lines


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


def _drain_runs(ctx: scenarios.Context) -> list[str]:
    """Every drain run behind the medians in the table, so their spread is on record."""
    lines: list[str] = []
    for extra, tag in _drain_contexts(ctx):
        runs = extra.get("drain_runs")
        if not isinstance(runs, dict):
            continue
        where = f" [{tag}]" if tag else ""
        lines += ["", f"Drain runs{where} (jobs/s; the table shows the median of each):", ""]
        for kind, label in scenarios.DRAIN_KINDS.items():
            shown = ", ".join(f"{v:,.0f}" for v in runs.get(kind, []))
            lines.append(f"- {label}: {shown}")
        outcome = extra.get("drain_runs_from_outcome")
        if isinstance(outcome, dict):
            lines.append(
                "- timed from the first attempt's outcome, as the retry row compares them: "
                + "; ".join(
                    f"{scenarios.DRAIN_KINDS[kind]} " + ", ".join(f"{v:,.0f}" for v in values)
                    for kind, values in outcome.items()
                )
            )
    metered = ctx.extra.get("drain_metrics_pairs")
    if isinstance(metered, list) and metered:
        lines += [
            "",
            "Drains with metrics off / on, pair by pair (jobs/s): "
            + "; ".join(f"{p['off']:,.0f} / {p['on']:,.0f}" for p in metered)
            + ".",
        ]
    pooled = ctx.extra.get("pooler_runs")
    if isinstance(pooled, dict):
        lines += [
            "",
            "Drain runs through PgBouncer (jobs/s): "
            + "; ".join(f"{k} " + ", ".join(f"{v:,.0f}" for v in vs) for k, vs in pooled.items())
            + ".",
        ]
    skipped = ctx.extra.get("pooler_skipped")
    if skipped:
        lines += ["", f"The drain through PgBouncer did not run: {skipped}."]
    return lines


def _drain_contexts(ctx: scenarios.Context) -> list[tuple[dict[str, object], str]]:
    """(extra, server tag) of the main run and of each --also-on server."""
    found: list[tuple[dict[str, object], str]] = [(ctx.extra, "")]
    also = ctx.extra.get("also_on")
    if isinstance(also, dict):
        found += [(extra, tag) for tag, extra in also.items() if isinstance(extra, dict)]
    return found


def _pcts(values: list[float]) -> list[str]:
    if not values:
        return ["", ""]
    return [f"{percentile(values, 50):.2f}", f"{percentile(values, 99):.2f}"]


def _others_section(ctx: scenarios.Context) -> list[str]:
    lines = ["", "## Other PostgreSQL queues for Python", ""]
    runs = ctx.extra.get("drain_runs")
    drains: dict[str, float] = (
        {k: statistics.median(v) for k, v in runs.items() if v} if isinstance(runs, dict) else {}
    )
    lines += [
        "Each installed from PyPI into a virtualenv of its own by the bench, set up as its "
        "documentation advises (see `bench/others/`), against a fresh database of the same "
        "server. PgQueuer's drains and latency runs take turns with JQS's and the raw "
        "baseline's (scenarios 3 and 5); Procrastinate, much slower, runs once on its own. "
        "Drains are timed from the first claim to the last completion by the database's "
        "clock, for every system. Latency is the same for every system too: a producer "
        "process sends each job through the system's own enqueue call, paced open-loop by "
        "`bench/pacing.py`, and stamps the moment the call returns (the job committed); the "
        "handler stamps its start. JQS's call is an HTTP POST, whose 201 leaves the server "
        "after the commit, so JQS's stamp lags its commit more than the others' do; the "
        "send-to-start columns, stamped when each call is made, carry no such lag.",
        "",
        "| system | version | drain jobs/s | JQS drain / it | p50 @200/s | p99 @200/s | "
        "p50 @1000/s | p99 @1000/s | send-to-start p50/p99 @200/s | settings |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    ours = drains.get("jqs", float("nan"))
    pgqueuer_runs = ctx.extra.get("pgqueuer_drains")
    pgqueuer = pgqueuer_runs if isinstance(pgqueuer_runs, list) else []
    pgqueuer_settings = next((str(r["settings"]) for r in pgqueuer if "settings" in r), "")
    for key, name, version, settings in (
        ("jqs", "JQS", "this repo", "`jqs worker` (drain), `jqs serve` (latency)"),
        ("raw", "raw asyncpg loop", "", "one connection, batches of 100, minimal table"),
        ("pgqueuer", "PgQueuer", scenarios._version_of(pgqueuer), pgqueuer_settings),
    ):
        cells, send = [], ["", ""]
        for rate in (200, 1000):
            data = ctx.extra.get(f"latency_{rate}")
            values = data["latencies"].get(key, []) if isinstance(data, dict) else []
            cells += _pcts(values)
            if rate == 200 and isinstance(data, dict):
                send = _pcts(data["send_to_start"].get(key, []))
        speed = drains.get(key, float("nan"))
        lines.append(
            f"| {name} | {version} | {_fmt(speed, 'jobs/s')} | {ours / speed:.2f}x | "
            + " | ".join(cells)
            + f" | {' / '.join(send)} | {settings} |"
        )
    data = ctx.extra.get("procrastinate")
    if isinstance(data, dict):
        drain = data.get("drain", {})
        if "error" in drain:
            lines.append(f"| Procrastinate | | failed: {drain['error']} | | | | | | | |")
        else:
            speed = float(drain.get("jobs_per_s", float("nan")))
            cells, send = [], ["", ""]
            for rate in (200, 1000):
                lat = data.get(f"latency_{rate}", {})
                cells += _pcts(lat.get("latencies", []))
                if rate == 200:
                    send = _pcts(lat.get("send_to_start", []))
            lines.append(
                f"| Procrastinate | {drain.get('version', '')} | {speed:,.0f} | "
                f"{ours / speed:.2f}x | "
                + " | ".join(cells)
                + f" | {' / '.join(send)} | {drain.get('settings', '')} |"
            )
    failed = {
        f"{system} at {rate}/s: {error}"
        for rate in (200, 1000)
        if isinstance(data := ctx.extra.get(f"latency_{rate}"), dict)
        for system, error in data.get("failed", {}).items()
    }
    if failed:
        lines += ["", "Failed runs: " + "; ".join(sorted(failed)) + "."]
    return lines


def _history_section(ctx: scenarios.Context) -> list[str]:
    runs = ctx.extra.get("history_runs")
    if not isinstance(runs, dict):
        return []

    def listed(values: list[float], unit: str) -> str:
        return ", ".join(_fmt(v, unit) for v in values)

    ms, rates = runs["db_ms_per_100"], runs["drain_jobs_per_s"]
    lines = [
        "",
        "## As history grows",
        "",
        "The same drain on an empty `jobs` table and on one that also holds "
        f"{runs['finished']:,} completed jobs, {len(ms['empty'])} rounds, each side first in "
        "every other one. "
        "Each run starts from a freshly vacuumed and checkpointed table, and autovacuum is "
        "off while it runs, so what is timed is the claim path, not a vacuum that happened "
        "to start. One `jqs worker` drains; the database time is what PostgreSQL spent "
        "executing its sessions' statements (`pg_stat_database.active_time`), per 100 jobs. "
        "Single runs vary on this 2-core machine (all runs are listed); the table gives "
        "the medians.",
        "",
        f"- database time per 100 jobs (ms), empty: {listed(ms['empty'], 'ms')}; "
        f"with history: {listed(ms['big'], 'ms')}",
        f"- one worker draining (jobs/s), empty: {listed(rates['empty'], 'jobs/s')}; "
        f"with history: {listed(rates['big'], 'jobs/s')}",
    ]
    reads = ctx.extra.get("history_index_reads")
    if isinstance(reads, dict) and reads.get("reads"):
        jobs = int(reads["jobs"])
        lines += [
            "",
            f"What the worker's statements read of each index of the big table while draining "
            f"{jobs:,} jobs (`pg_stat_user_indexes`, the last such run): "
            + ", ".join(
                f"`{name}` {scans:,} scans, {read / jobs:.1f} entries per job"
                for name, (scans, read) in sorted(reads["reads"].items())
            )
            + ". The finished rows' indexes stay out of the hot path.",
        ]
    listings = ctx.extra.get("history_listings")
    if isinstance(listings, dict):
        lines += [
            "",
            "Listing on the big table (`GET /jobs` from a `jqs serve --no-worker`, first page "
            "of 20, median of 10 requests, ms, HTTP included): "
            + ", ".join(f"{label} {_fmt(ms, 'ms')}" for label, ms in listings.items())
            + ". Each reads an index holding only what it asks for (migration 0005), so "
            "none walks the finished rows.",
        ]
    return lines


def _profile_section(ctx: scenarios.Context) -> list[str]:
    profile = ctx.extra.get("profile")
    if not isinstance(profile, list) or not profile:
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
    lines += [f"| {share:.1%} | `{name}` |" for name, share in profile]
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
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
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
    plt.close(fig)


Step = Callable[[scenarios.Context], Awaitable[None]]


async def _run_steps(ctx: scenarios.Context, steps: list[tuple[str, Step]], skip: set[str]) -> None:
    steal = ctx.extra.setdefault("steal", {})
    assert isinstance(steal, dict)
    for name, step in steps:
        if name in skip:
            continue
        label = f"{name} [{ctx.tag}]" if ctx.tag else name
        print(f"== {label}", flush=True)
        printed = len(ctx.rows)
        began = cpu_jiffies()
        try:
            await step(ctx)
        except Exception as exc:  # one broken scenario must not lose the others' numbers
            print(f"   {label} failed: {exc!r}", flush=True)
            ctx.extra[f"failed_{name}"] = repr(exc)
        steal[label] = steal_percent(began, cpu_jiffies())
        for row in ctx.rows[printed:]:
            print(f"   {row.scenario}: {row.value:,.2f} vs {row.baseline:,.2f} ({row.ratio:.2f}x)")


async def main() -> None:
    parser = argparse.ArgumentParser(description="JQS benchmarks")
    parser.add_argument("--quick", action="store_true", help="small numbers, a smoke run")
    parser.add_argument("--memory-minutes", type=float, default=10.0)
    parser.add_argument("--skip", default="", help="comma-separated scenario names to skip")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated scenario names to run, and no others (e.g. servers); "
        "give --out too, to keep docs/benchmarks.md whole",
    )
    parser.add_argument(
        "--dsn",
        default=None,
        help="an existing PostgreSQL server to run on, e.g. "
        "postgresql://postgres@127.0.0.1:5432/postgres (default: an embedded one); the bench "
        "makes and drops databases of its own there",
    )
    parser.add_argument(
        "--also-on",
        action="append",
        default=[],
        metavar="DSN|embedded",
        help="run the drain scenario on this server too (repeatable); its rows are marked",
    )
    parser.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    server = Server(args.dsn)
    others = [Server(None if dsn == "embedded" else dsn) for dsn in args.also_on]
    logs = Path(tempfile.mkdtemp(prefix="jqs-bench-logs-"))
    ctx = scenarios.Context(server=server, logs=logs, quick=args.quick)
    steps: list[tuple[str, Step]] = [
        ("single_post", scenarios.single_post),
        ("batch_post", scenarios.batch_post),
        ("enqueue", in_transaction.enqueue_in_transaction),
        ("drain", scenarios.drain),
        ("drain_metrics", drain_pairs.metrics_pairs),
        ("pooler", pooler.pooler),
        ("end_to_end", scenarios.end_to_end),
        ("latency", scenarios.pickup_latency),
        ("http_worker", scenarios.http_worker),
        ("wait", scenarios.wait_latency),
        ("webhooks", scenarios.webhooks),
        ("history", history.history),
        ("dashboard", dashboard.dashboard),
        ("profile", scenarios.profile_drain),
        ("others", scenarios.others),
        ("servers", scenarios.servers),
    ]
    if args.only:
        only = set(args.only.split(","))
        skip |= {name for name, _ in steps if name not in only} | ({"memory"} - only)
    servers: list[dict[str, str]] = []
    also: dict[str, object] = {}
    ctx.extra["also_on"] = also
    try:
        server.start()
        facts = machine()
        servers.append(await server.facts())
        await _run_steps(ctx, steps, skip)
        for other in others:
            other.start()
            try:
                info = await other.facts()
                if info["name"] == servers[0]["name"]:
                    info["name"] += " (2)"
                servers.append(info)
                side = scenarios.Context(
                    server=other, logs=logs, quick=args.quick, tag=info["name"]
                )
                side.extra["steal"] = ctx.extra["steal"]
                await _run_steps(side, [("drain", scenarios.drain)], skip)
                ctx.rows += side.rows
                also[info["name"]] = side.extra
            finally:
                await other.stop()
        if "memory" not in skip:
            print("== memory", flush=True)
            began = cpu_jiffies()
            await scenarios.memory(ctx, 1.0 if args.quick else args.memory_minutes)
            steal = ctx.extra["steal"]
            assert isinstance(steal, dict)
            steal["memory"] = steal_percent(began, cpu_jiffies())
    finally:
        await server.stop()
    command = "python -m bench.run " + " ".join(a for a in shown_args() if a)
    out = Path(args.out)
    write_report(ctx, facts, servers, command.strip(), out)
    write_chart(ctx, out.with_suffix(".png"))
    (logs / "extra.json").write_text(
        json.dumps(
            {k: v for k, v in ctx.extra.items() if not k.startswith("latency_")},
            default=str,
            indent=1,
        )
    )
    print(f"wrote {out} and {out.with_suffix('.png')}; logs in {logs}")


if __name__ == "__main__":
    asyncio.run(main())
