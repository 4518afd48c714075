// `cargo xtask bench edge`: ack latency and throughput of the Rust edge worker (release build,
// edge/build) and of the JavaScript reference worker (reference-worker.mjs), both in workerd
// through Miniflare with wrangler.toml's bindings, measured in the same run.
//
// For 1- and 500-line `orders/create` bodies (HMAC-checked and stripped), sequentially and over
// 8 concurrent connections, it alternates rounds between the two workers and reports client-side
// latency p50/p99 over all rounds and the median round's requests/s. The client runs on the same
// machine (2 cores), so absolute figures include its cost; the ratio is the comparison.

import { join } from "node:path";

import { fixture, ROOT, shopifyHeaders, startEdge, TEST_SECRETS } from "../../edge/tests/support/edge.mjs";

const ROUNDS = 6;
const SCENARIOS = [
  { lines: 1, connections: 1, requests: 300 },
  { lines: 1, connections: 8, requests: 800 },
  { lines: 500, connections: 1, requests: 80 },
  { lines: 500, connections: 8, requests: 160 },
];

const workers = {
  rust: await startEdge({ secrets: TEST_SECRETS, consumers: false, keepLogs: false }),
  js: await startEdge({ secrets: TEST_SECRETS, consumers: false, keepLogs: false, script: join(ROOT, "bench/edge/reference-worker.mjs") }),
};

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

const rows = [];
for (const sc of SCENARIOS) {
  const body = fixture(`order-${sc.lines}.json`);
  const results = { rust: { latencies: [], rps: [] }, js: { latencies: [], rps: [] } };
  for (const name of ["rust", "js"]) {
    await run(workers[name].url, body, { connections: sc.connections, requests: Math.ceil(sc.requests / 4) }); // warm-up
  }
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? ["rust", "js"] : ["js", "rust"];
    for (const name of order) {
      const r = await run(workers[name].url, body, sc);
      results[name].latencies.push(...r.latencies);
      results[name].rps.push(r.rps);
    }
  }
  const summary = (r) => ({ p50: pct(r.latencies, 50), p99: pct(r.latencies, 99), rps: median(r.rps) });
  const rust = summary(results.rust);
  const js = summary(results.js);
  rows.push({ ...sc, bytes: body.length, rust, js });
  console.error(`done: ${sc.lines}-line order, ${sc.connections} connection(s)`);
}

await workers.rust.mf.dispose();
await workers.js.mf.dispose();

const f = (x) => x.toFixed(2);
console.log(`\nEdge ack latency in workerd (Miniflare ${(await import("miniflare/package.json", { with: { type: "json" } })).default.version}), ${ROUNDS} rounds per worker, client on the same machine.\n`);
console.log("| order | body | connections | Rust p50 ms | Rust p99 ms | Rust req/s | JS p50 ms | JS p99 ms | JS req/s | p99 JS/Rust | req/s Rust/JS |");
console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(
    `| ${r.lines}-line orders/create | ${(r.bytes / 1000).toFixed(1)} kB | ${r.connections} | ${f(r.rust.p50)} | ${f(r.rust.p99)} | ${r.rust.rps.toFixed(0)} | ${f(r.js.p50)} | ${f(r.js.p99)} | ${r.js.rps.toFixed(0)} | ${f(r.js.p99 / r.rust.p99)} | ${f(r.rust.rps / r.js.rps)} |`,
  );
}
