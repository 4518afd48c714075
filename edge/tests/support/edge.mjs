// Runs the built edge worker (edge/build, made by worker-build) in workerd through Miniflare,
// configured from the repository's wrangler.toml with test overrides, and signs Shopify
// deliveries for it.

import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { Log, LogLevel, Miniflare } from "miniflare";
import { unstable_getMiniflareWorkerOptions } from "wrangler";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const SHOPIFY_SECRET = "shpss_edge_test_secret_0123456789abcdef";
export const PREVIOUS_SECRET = "shpss_edge_previous_secret_0123456789abc";
export const SIGNING_KEY_ID = "edge-test";
export const SIGNING_KEY = "edge-test-signing-key-0123456789abcdefgh";
export const SHOP = "acme-wholesale.myshopify.com";

/**
 * The fixed secrets of the tests and the benchmark, published in this repository: tests pass
 * them to `startEdge` explicitly. Never a default anywhere (serve.mjs reads the environment).
 */
export const TEST_SECRETS = Object.freeze({
  SHOPIFY_SECRET,
  SHOPIFY_PREVIOUS_SECRET: PREVIOUS_SECRET,
  EDGE_SIGNING_KEY_ID: SIGNING_KEY_ID,
  EDGE_SIGNING_KEY: SIGNING_KEY,
});

/** A fixture body written by `cargo run -p shopify-simulator --bin shopify-fixtures -- <dir>`. */
export function fixture(name) {
  const dir = process.env.EDGE_FIXTURES ?? join(ROOT, "target/edge-fixtures");
  return readFileSync(join(dir, name));
}

/**
 * Starts the worker. `secrets` are bound as given (`SHOPIFY_SECRET` and `EDGE_SIGNING_KEY`
 * required, `SHOPIFY_PREVIOUS_SECRET` and `EDGE_SIGNING_KEY_ID` optional; tests pass
 * `TEST_SECRETS`): there are no defaults. `vars` override wrangler.toml's vars; `consumers` override the queue
 * consumer settings (per queue name), or `false` runs no consumer (the benchmark measures
 * the acknowledging side only); `script` runs another worker with the same bindings (the
 * JavaScript reference); `keepLogs: false` discards the worker's console, `echoLogs: true`
 * prints it; `port` fixes the listening port (default: a free one). `dataPoints` is what the
 * Analytics Engine binding `EDGE_COUNTS` is: `"local"` (wrangler.toml's dataset, Miniflare's
 * simulator, which keeps nothing), `"record"` (a recorder that prints each data point as a
 * `data-point {json}` line to the captured console), or `"unbound"` (no binding).
 * `inspectorPort` opens workerd's V8 inspector for this worker on that port (profiling).
 */
export async function startEdge({ originUrl, secrets, vars = {}, consumers = {}, script, keepLogs = true, echoLogs = false, port = 0, dataPoints = "local", inspectorPort } = {}) {
  for (const required of ["SHOPIFY_SECRET", "EDGE_SIGNING_KEY"]) {
    if (!secrets?.[required]) throw new Error(`startEdge: secrets.${required} is required (tests pass TEST_SECRETS)`);
  }
  const { workerOptions } = unstable_getMiniflareWorkerOptions(join(ROOT, "wrangler.toml"));
  const logs = [];
  const queueConsumers = consumers === false ? {} : { ...workerOptions.queueConsumers };
  for (const [name, o] of Object.entries(consumers || {})) queueConsumers[name] = { ...queueConsumers[name], ...o };
  const { analyticsEngineDatasets = {}, ...edgeOptions } = workerOptions;
  const datasets = dataPoints === "local" ? analyticsEngineDatasets : {};
  const recorded = dataPoints === "record" ? analyticsEngineDatasets : {};
  const edge = {
    ...edgeOptions,
    analyticsEngineDatasets: datasets,
    wrappedBindings: Object.fromEntries(
      Object.entries(recorded).map(([binding, { dataset }]) => [binding, { scriptName: "data-point-recorder", bindings: { dataset } }]),
    ),
    name: "wholesail-edge",
    modules: true,
    scriptPath: script ?? join(ROOT, "edge/build/index.js"),
    modulesRoot: dirname(script ?? join(ROOT, "edge/build/index.js")),
    modulesRules: [
      { type: "ESModule", include: ["**/*.js", "**/*.mjs"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    bindings: {
      ...workerOptions.bindings,
      ORIGIN_URL: originUrl ?? "http://127.0.0.1:9",
      ...secrets,
      ...vars,
    },
    queueConsumers,
    ...(inspectorPort ? { unsafeInspectorProxy: true } : {}),
  };
  const workers = [edge];
  if (dataPoints === "record") workers.push({ name: "data-point-recorder", modules: true, script: DATA_POINT_RECORDER });
  const mf = new Miniflare({
    workers,
    r2Persist: false,
    cf: false,
    host: "127.0.0.1",
    port,
    ...(inspectorPort ? { inspectorPort } : {}),
    log: new Log(LogLevel.WARN),
    handleRuntimeStdio(stdout, stderr) {
      for (const s of [stdout, stderr]) {
        let partial = ""; // a line cut between two chunks
        s.on("data", (d) => {
          if (echoLogs) process.stdout.write(d);
          if (!keepLogs) return;
          const lines = (partial + d).split("\n");
          partial = lines.pop();
          logs.push(...lines.filter(Boolean));
        });
      }
    },
  });
  const url = await mf.ready;
  return { mf, url: url.href.replace(/\/$/, ""), logs };
}

/** A wrapped binding standing in for an Analytics Engine dataset: prints what it is given. */
const DATA_POINT_RECORDER = `
export default function (env) {
  return {
    writeDataPoint(point) {
      console.log("data-point " + JSON.stringify({ dataset: env.dataset, ...point }));
    },
  };
}
`;

/** Shopify's webhook headers for `body`, signed with `secret`. */
export function shopifyHeaders(body, { id, topic = "orders/create", shop = SHOP, secret = SHOPIFY_SECRET } = {}) {
  return {
    "content-type": "application/json",
    "x-shopify-hmac-sha256": createHmac("sha256", secret).update(body).digest("base64"),
    "x-shopify-topic": topic,
    "x-shopify-shop-domain": shop,
    "x-shopify-api-version": "2025-07",
    "x-shopify-webhook-id": id,
    "x-shopify-event-id": `event-${id}`,
    "x-shopify-triggered-at": new Date().toISOString(),
  };
}

/** Posts a delivery to the worker's `/webhooks`; returns the response. */
export function deliver(url, body, options) {
  return fetch(`${url}/webhooks`, { method: "POST", body, headers: shopifyHeaders(body, options) });
}
