// A JQS worker in Node.js, with no dependencies: the HTTP worker protocol (docs/workers.md)
// on Node's built-in fetch.
//
//   JQS_URL=http://127.0.0.1:8000 JQS_API_KEY=... node worker.mjs
//
// Settings (environment): JQS_URL, JQS_API_KEY (a key with the `worker` scope),
// JQS_QUEUES (comma-separated, default "default"), JQS_CONCURRENCY (jobs at once, default
// 10), JQS_LEASE_SECONDS (default 30), JQS_WORKER_ID (default host:pid).
//
// It claims up to as many jobs as it has free slots, waiting (long-polling) up to 20 s when
// there are none; keeps each running job's lease with a heartbeat every third of the lease,
// which also says when a job was asked to cancel; and reports the ends of attempts in
// batches (POST /v1/workers/outcomes). SIGTERM: claim nothing more, finish what runs,
// report it, exit. Each thing it does is one JSON line on stdout.

import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";

const URL_BASE = (process.env.JQS_URL ?? "http://127.0.0.1:8000").replace(/\/$/, "");
const KEY = process.env.JQS_API_KEY ?? "";
const QUEUES = (process.env.JQS_QUEUES ?? "default").split(",").map((q) => q.trim()).filter(Boolean);
const CONCURRENCY = Number(process.env.JQS_CONCURRENCY ?? 10);
const LEASE_SECONDS = Number(process.env.JQS_LEASE_SECONDS ?? 30);
const WORKER = {
  id: process.env.JQS_WORKER_ID ?? `${os.hostname()}:${process.pid}:node`,
  host: os.hostname(),
  version: "node-example/1.0",
};

// The handlers, by task name. Each gets the payload and a context: `signal` aborts when the
// job was asked to cancel (or its lease was lost), `progress(fraction, message)` reports.
class Cancelled extends Error {}

const handlers = {
  // Returns what it was given.
  echo: async (payload) => ({ echoed: payload }),
  // Fails its first `payload.times` attempts (default: every one), then succeeds.
  fail: async (payload, ctx) => {
    if (ctx.attempt <= (payload.times ?? Infinity)) throw new Error(`failing attempt ${ctx.attempt}`);
    return { succeeded_on: ctx.attempt };
  },
  // Sleeps `payload.seconds`, reporting progress, stopping when cancelled. With
  // "heartbeat": false it sends no heartbeat: its lease runs out, and its end is refused.
  sleep: async (payload, ctx) => {
    const seconds = payload.seconds ?? 1;
    for (let done = 0; done < seconds; done += 0.25) {
      if (ctx.signal.aborted) throw new Cancelled("cancelled while sleeping");
      await sleep(250);
    }
    await ctx.progress(1, "slept");
    return { slept: seconds };
  },
};

function say(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, worker: WORKER.id, ...fields }) + "\n");
}

async function call(path, body, signal = undefined) {
  const response = await fetch(URL_BASE + path, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` },
    body: JSON.stringify(body),
    signal,
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

// Outcomes wait here and go out together: one request for all that ended meanwhile.
let pending = [];
let flushing = null;

async function flush() {
  while (pending.length) {
    const outcomes = pending;
    pending = [];
    const answer = await call("/v1/workers/outcomes", { outcomes });
    if (answer.status !== 200) {
      say("outcomes_refused", { status: answer.status, detail: answer.body?.detail });
      continue; // not written: their leases run out and the jobs run again
    }
    for (const item of answer.body.results) {
      if (item.ok) say("job_ended", { job_id: item.job_id, status: item.status, retry_in: item.retry_in });
      else say("job_end_refused", { job_id: item.job_id, status: item.problem.status, detail: item.problem.detail });
    }
  }
}

function report(outcome) {
  pending.push(outcome);
  flushing ??= (async () => {
    try {
      await flush();
    } catch (error) {
      say("outcomes_failed", { error: String(error) });
    } finally {
      flushing = null;
    }
  })();
}

const running = new Set();

async function run(job) {
  const abort = new AbortController();
  const token = job.lease_token;
  const ctx = {
    attempt: job.attempt,
    signal: abort.signal,
    progress: (progress, message) => call(`/v1/jobs/${job.id}/progress`, { lease_token: token, progress, message }),
  };
  const beats = job.payload.heartbeat === false
    ? null
    : setInterval(async () => {
        try {
          const beat = await call(`/v1/jobs/${job.id}/heartbeat`, { lease_token: token, lease_seconds: LEASE_SECONDS });
          if (beat.status === 409) {
            say("lease_lost", { job_id: job.id });
            abort.abort();
          } else if (beat.body?.cancel_requested && !abort.signal.aborted) {
            say("cancel_requested", { job_id: job.id });
            abort.abort();
          }
        } catch (error) {
          say("heartbeat_failed", { job_id: job.id, error: String(error) });
        }
      }, (LEASE_SECONDS * 1000) / 3);
  say("job_started", { job_id: job.id, task: job.task, attempt: job.attempt });
  try {
    const handler = handlers[job.task];
    if (!handler) {
      report({ job_id: job.id, outcome: "fail", lease_token: token, final: true,
               error: { type: "UnknownTask", message: `no handler for task ${job.task}` } });
      return;
    }
    const result = await handler(job.payload, ctx);
    report({ job_id: job.id, outcome: "complete", lease_token: token, result });
  } catch (error) {
    report({ job_id: job.id, outcome: "fail", lease_token: token,
             error: { type: error.constructor.name, message: error.message, traceback: error.stack } });
  } finally {
    if (beats) clearInterval(beats);
  }
}

let stopping = false;
const stopped = new AbortController();
process.on("SIGTERM", () => {
  stopping = true;
  stopped.abort();
  say("stopping", { running: running.size });
});

say("worker_started", { url: URL_BASE, queues: QUEUES, concurrency: CONCURRENCY });
while (!stopping) {
  const room = CONCURRENCY - running.size;
  if (room <= 0) {
    await Promise.race(running);
    continue;
  }
  let answer;
  try {
    answer = await call("/v1/workers/claim", {
      worker: { ...WORKER, running: running.size },
      queues: QUEUES,
      max_jobs: Math.min(room, 100),
      wait: 20,
      lease_seconds: LEASE_SECONDS,
    }, stopped.signal); // SIGTERM ends a waiting claim; the server hands back what it held
  } catch (error) {
    if (stopping) break;
    say("claim_failed", { error: String(error) });
    await sleep(1000, undefined, { signal: stopped.signal }).catch(() => {});
    continue;
  }
  if (answer.status !== 200) {
    say("claim_refused", { status: answer.status, detail: answer.body?.detail });
    await sleep(1000, undefined, { signal: stopped.signal }).catch(() => {});
    continue;
  }
  for (const job of answer.body) {
    const task = run(job).finally(() => running.delete(task));
    running.add(task);
  }
}
await Promise.all(running);
while (flushing) await flushing;
say("worker_stopped");
