// Where a worker's time goes per request: V8's sampling CPU profiler in workerd (through
// Miniflare's inspector proxy) while `EDGE_PROFILE_REQUESTS` deliveries of an order are sent
// one at a time, then self time per function, largest first. Run with a `worker-build
// --profiling` build (names kept in the wasm) as `node bench/edge/profile.mjs <index.js>
// [lines]`; the JavaScript reference or floor worker can be profiled the same way.

import { join } from "node:path";

import WebSocket from "ws";

import { fixture, ROOT, shopifyHeaders, startEdge, TEST_SECRETS } from "../../edge/tests/support/edge.mjs";

const script = process.argv[2] ?? join(ROOT, "edge/build/index.js");
const lines = Number(process.argv[3] ?? 500);
const requests = Number(process.env.EDGE_PROFILE_REQUESTS ?? 400);
const inspectorPort = 9300 + (process.pid % 500);

const edge = await startEdge({ secrets: TEST_SECRETS, consumers: false, keepLogs: false, script, inspectorPort });
const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)).json();
const target = targets.find((t) => t.webSocketDebuggerUrl?.includes("wholesail-edge")) ?? targets[0];
const ws = new WebSocket(target.webSocketDebuggerUrl);
await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
let nextId = 1;
const pending = new Map();
ws.on("message", (data) => {
  const msg = JSON.parse(data);
  if (msg.id && pending.has(msg.id)) {
    pending.get(msg.id)(msg);
    pending.delete(msg.id);
  }
});
const send = (method, params = {}) =>
  new Promise((resolve) => {
    const id = nextId++;
    pending.set(id, resolve);
    ws.send(JSON.stringify({ id, method, params }));
  });

const body = fixture(`order-${lines}.json`);
const headers = shopifyHeaders(body, { id: "x" });
let seq = 0;
async function deliver() {
  const res = await fetch(`${edge.url}/webhooks`, {
    method: "POST",
    body,
    headers: { ...headers, "x-shopify-webhook-id": `profile-${seq++}` },
  });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
}
for (let i = 0; i < 50; i++) await deliver(); // warm-up

await send("Profiler.enable");
await send("Profiler.setSamplingInterval", { interval: 50 });
await send("Profiler.start");
for (let i = 0; i < requests; i++) await deliver();
const { result } = await send("Profiler.stop");
ws.close();
await edge.mf.dispose();

const { nodes, samples, timeDeltas } = result.profile;
const byId = new Map(nodes.map((n) => [n.id, n]));
const self = new Map();
let total = 0;
for (let i = 0; i < samples.length; i++) {
  const n = byId.get(samples[i]);
  const dt = timeDeltas[i] ?? 0;
  total += dt;
  const key = `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url.split("/").pop()}`;
  self.set(key, (self.get(key) ?? 0) + dt);
}
const idle = [...self].filter(([k]) => k.startsWith("(idle)") || k.startsWith("(program)")).reduce((a, [, v]) => a + v, 0);
console.log(`${requests} requests of the ${lines}-line order; ${(total / 1000).toFixed(0)} ms sampled, ${((total - idle) / 1000 / requests).toFixed(3)} ms per request busy (idle and program excluded)`);
console.log("| self µs/request | share of busy | function |\n|---:|---:|---|");
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.EDGE_PROFILE_TOP ?? 40))) {
  console.log(`| ${(v / requests).toFixed(1)} | ${((100 * v) / (total - idle)).toFixed(1)}% | ${k} |`);
}
