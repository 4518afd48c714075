// `cargo xtask bench edge`: ack latency and throughput of the Rust edge worker (release build,
// edge/build), of the JavaScript reference worker (reference-worker.mjs) and of the runtime's
// floor (floor-worker.mjs: read the body, answer 200), all in workerd through Miniflare with
// wrangler.toml's bindings, measured in the same run.
//
// For 1- and 500-line `orders/create` bodies (HMAC-checked and stripped), sequentially and over
// 8 concurrent connections, it alternates rounds between the workers (rotating their order) and
// reports client-side latency p50/p99 over all rounds and the median round's requests/s, and
// each worker's cost above the floor (p50 − the floor's p50) with the ratio Rust ÷ JS.
//
// A Rust floor (bench/edge-floor: workers-rs's entry point, the body copied into wasm, a fixed
// 200) runs in the same rounds: what any Rust worker pays above the JavaScript floor before
// doing any work, set beside the room the goals leave (#17: Rust's cost above the floor ≤ 0.5×
// JavaScript's on 500-line orders; ≥ 1.2× its requests/s on 1-line orders at 8 connections).
//
// A worker making only the runtime calls both make (runtime-calls-worker.mjs: HMAC, SHA-256,
// a queue message of the stripped size, log, count) runs in the same rounds: the Rust worker
// cannot go below it, so the goal's bound minus it is what the goal leaves for Rust's own work.
//
// Every scenario runs twice: unpinned (client and workerd share both cores as the scheduler
// likes) and pinned (`taskset`: this client on CPU 0, every workerd on CPU 1), so the client's
// own work stops competing with the worker's. `EDGE_BENCH_BEFORE=<dir>/index.js` adds another
// build of the Rust worker (e.g. main's) to the same run; `EDGE_BENCH_ROUNDS` sets the rounds.

import { execFileSync } from "node:child_process";
import { loadavg } from "node:os";
import { join } from "node:path";

import { fixture, ROOT, shopifyHeaders, startEdge, TEST_SECRETS } from "../../edge/tests/support/edge.mjs";

const ROUNDS = Number(process.env.EDGE_BENCH_ROUNDS ?? 6);
const SCENARIOS = [
  { lines: 1, connections: 1, requests: 300 },
  { lines: 1, connections: 8, requests: 800 },
  { lines: 500, connections: 1, requests: 80 },
  { lines: 500, connections: 8, requests: 160 },
];
const MODES = process.env.EDGE_BENCH_MODES?.split(",") ?? ["unpinned", "pinned"];

const start = (script) => startEdge({ secrets: TEST_SECRETS, consumers: false, keepLogs: false, script });
const workers = {
  floor: await start(join(ROOT, "bench/edge/floor-worker.mjs")),
  rustFloor: await start(join(ROOT, "bench/edge-floor/build/index.js")),
  rust: await start(),
  js: await start(join(ROOT, "bench/edge/reference-worker.mjs")),
  calls: await start(join(ROOT, "bench/edge/runtime-calls-worker.mjs")),
};
if (process.env.EDGE_BENCH_BEFORE) workers.before = await start(process.env.EDGE_BENCH_BEFORE);
const names = Object.keys(workers);

/** This process's descendants named workerd (Miniflare starts one per instance). */
function workerdPids() {
  const out = execFileSync("ps", ["-e", "-o", "pid=,ppid=,comm="], { encoding: "utf8" });
  const procs = out.trim().split("\n").map((l) => l.trim().split(/\s+/));
  const mine = new Set([String(process.pid)]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of procs) {
      if (mine.has(ppid) && !mine.has(pid)) {
        mine.add(pid);
        grew = true;
      }
    }
  }
  return procs.filter(([pid, , comm]) => mine.has(pid) && comm === "workerd").map(([pid]) => pid);
}

/** Pins (or unpins) every thread of this client and of each workerd. */
function pin(mode) {
  const workerd = workerdPids();
  if (workerd.length < names.length) throw new Error(`found ${workerd.length} workerd processes for ${names.length} workers`);
  const set = (cpus, pid) => execFileSync("taskset", ["-a", "-p", "-c", cpus, pid], { stdio: "ignore" });
  set(mode === "pinned" ? "0" : "0-1", String(process.pid));
  for (const pid of workerd) set(mode === "pinned" ? "1" : "0-1", pid);
}

// The HMAC is computed once per body; only the webhook id changes between requests.
let seq = 0;
const signed = new Map();
async function one(url, body) {
  if (!signed.has(body)) signed.set(body, shopifyHeaders(body, { id: "x" }));
  const headers = { ...signed.get(body), "x-shopify-webhook-id": `bench-${seq++}` };
  const t = performance.now();
  const res = await fetch(`${url}/webhooks`, { method: "POST", body, headers });
  await res.arrayBuffer();
  const ms = performance.now() - t;
  if (res.status !== 200) throw new Error(`HTTP ${res.status} from ${url}`);
  return ms;
}

async function run(url, body, { connections, requests }) {
  const latencies = [];
  let left = requests;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (left-- > 0) latencies.push(await one(url, body));
    }),
  );
  return { latencies, rps: requests / ((performance.now() - t) / 1000) };
}

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const median = (xs) => pct(xs, 50);

const loadBefore = loadavg();
const rows = [];
for (const mode of MODES) {
  pin(mode);
  for (const sc of SCENARIOS) {
    const body = fixture(`order-${sc.lines}.json`);
    const results = Object.fromEntries(names.map((n) => [n, { latencies: [], rps: [] }]));
    for (const name of names) {
      await run(workers[name].url, body, { connections: sc.connections, requests: Math.ceil(sc.requests / 4) }); // warm-up
    }
    for (let round = 0; round < ROUNDS; round++) {
      const order = names.map((_, i) => names[(i + round) % names.length]);
      if (round % 2 === 1) order.reverse();
      for (const name of order) {
        const r = await run(workers[name].url, body, sc);
        results[name].latencies.push(...r.latencies);
        results[name].rps.push(r.rps);
      }
    }
    const summary = (r) => ({ p50: pct(r.latencies, 50), p99: pct(r.latencies, 99), rps: median(r.rps) });
    rows.push({ mode, ...sc, bytes: body.length, ...Object.fromEntries(names.map((n) => [n, summary(results[n])])) });
    console.error(`done: ${mode}, ${sc.lines}-line order, ${sc.connections} connection(s)`);
  }
}
pin("unpinned");
const loadAfter = loadavg();

for (const w of Object.values(workers)) await w.mf.dispose();

const f = (x) => x.toFixed(2);
const load = (l) => l.map((x) => x.toFixed(2)).join(" ");
console.log(`\nEdge ack latency in workerd (Miniflare ${(await import("miniflare/package.json", { with: { type: "json" } })).default.version}), ${ROUNDS} alternating rounds per worker, client on the same machine; load average ${load(loadBefore)} before, ${load(loadAfter)} after.\n`);
console.log("Latency (ms) and throughput; floor = read the body, answer 200.\n");
const extra = names.includes("before") ? " before p50 | before p99 | before req/s |" : "";
console.log(`| client/workerd | order | body | conns | floor p50 | floor p99 | floor req/s | Rust p50 | Rust p99 | Rust req/s | JS p50 | JS p99 | JS req/s |${extra} req/s Rust/JS |`);
console.log(`|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|${extra ? "---:|---:|---:|" : ""}---:|`);
for (const r of rows) {
  const cells = (w) => `${f(w.p50)} | ${f(w.p99)} | ${w.rps.toFixed(0)}`;
  const before = names.includes("before") ? ` ${cells(r.before)} |` : "";
  console.log(
    `| ${r.mode} | ${r.lines}-line | ${(r.bytes / 1000).toFixed(1)} kB | ${r.connections} | ${cells(r.floor)} | ${cells(r.rust)} | ${cells(r.js)} |${before} ${f(r.rust.rps / r.js.rps)} |`,
  );
}
console.log("\nThe Rust floor (workers-rs entry, body copied into wasm, fixed 200) above the JavaScript floor, beside the room the goals leave the Rust worker above the JavaScript floor (500-line: 0.5 × JS's cost above it; 1-line: the per-request cost at 1.2 × JS's req/s). Per request from req/s, ms.\n");
console.log("| client/workerd | order | conns | Rust floor p50 | Rust floor req/s | Rust floor above (p50) | Rust floor above (req/s) | room for the goal (req/s) | Rust worker above (req/s) |");
console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  const perReq = (w) => 1000 / w.rps - 1000 / r.floor.rps;
  const room = r.lines === 1 ? 1000 / (1.2 * r.js.rps) - 1000 / r.floor.rps : 0.5 * perReq(r.js);
  console.log(
    `| ${r.mode} | ${r.lines}-line | ${r.connections} | ${f(r.rustFloor.p50)} | ${r.rustFloor.rps.toFixed(0)} | ${f(r.rustFloor.p50 - r.floor.p50)} | ${f(perReq(r.rustFloor))} | ${f(room)} | ${f(perReq(r.rust))} |`,
  );
}
console.log("\nCost above the floor (p50 − floor p50, ms; per request from req/s: 1000/req/s − 1000/floor req/s).\n");
const beforeHead = names.includes("before") ? " before above p50 | before ÷ JS |" : "";
console.log(`| client/workerd | order | conns | Rust above p50 | JS above p50 | Rust ÷ JS |${beforeHead} Rust above (req/s) | JS above (req/s) | Rust ÷ JS (req/s) |`);
console.log(`|---|---|---:|---:|---:|---:|${beforeHead ? "---:|---:|" : ""}---:|---:|---:|`);
for (const r of rows) {
  const above = (w) => w.p50 - r.floor.p50;
  const perReq = (w) => 1000 / w.rps - 1000 / r.floor.rps;
  const before = names.includes("before") ? ` ${f(above(r.before))} | ${f(above(r.before) / above(r.js))} |` : "";
  console.log(
    `| ${r.mode} | ${r.lines}-line | ${r.connections} | ${f(above(r.rust))} | ${f(above(r.js))} | ${f(above(r.rust) / above(r.js))} |${before} ${f(perReq(r.rust))} | ${f(perReq(r.js))} | ${f(perReq(r.rust) / perReq(r.js))} |`,
  );
}
console.log("\nThe runtime calls both workers make (runtime-calls-worker.mjs: HMAC verify, SHA-256, a queue message of the stripped size, a log line, a count; no parsing) above the floor, beside the goal's bound on the Rust worker (500-line: 0.5 × JS's cost above the floor). The Rust worker makes the same calls, so it cannot go below them: what the goal leaves for its own work (parse, strip, envelope, wasm glue) is the bound minus the calls. ms, p50 and per request from req/s.\n");
console.log("| client/workerd | order | conns | calls above p50 | JS above p50 | calls ÷ JS | bound for Rust (0.5 × JS) | left for Rust's own work p50 | Rust's own work now p50 | calls above (req/s) | JS above (req/s) | left (req/s) | Rust's own now (req/s) |");
console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  const above = (w) => w.p50 - r.floor.p50;
  const perReq = (w) => 1000 / w.rps - 1000 / r.floor.rps;
  console.log(
    `| ${r.mode} | ${r.lines}-line | ${r.connections} | ${f(above(r.calls))} | ${f(above(r.js))} | ${f(above(r.calls) / above(r.js))} | ${f(0.5 * above(r.js))} | ${f(0.5 * above(r.js) - above(r.calls))} | ${f(above(r.rust) - above(r.calls))} | ${f(perReq(r.calls))} | ${f(perReq(r.js))} | ${f(0.5 * perReq(r.js) - perReq(r.calls))} | ${f(perReq(r.rust) - perReq(r.calls))} |`,
  );
}
