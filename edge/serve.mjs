// Runs the built edge worker (edge/build) locally in workerd through Miniflare, with the
// queues, dead-letter queue and R2 bucket of wrangler.toml, until interrupted. For the demo and
// for trying the worker by hand; `cargo xtask test` builds edge/build first.
//
//   ORIGIN_URL=http://127.0.0.1:8080 SHOPIFY_SECRET=… EDGE_SIGNING_KEY=… \
//     node edge/serve.mjs [--port 8787]
//
// SHOPIFY_PREVIOUS_SECRET (during a rotation) is bound only when set; there are no default
// secrets. Other wrangler.toml vars can be overridden the same way (EDGE_SIGNING_KEY_ID,
// SHOP_ALLOWLIST, RETRY_BASE_DELAY_SECS, …). QUEUE_MAX_RETRIES and QUEUE_BATCH_TIMEOUT_SECS
// override the main queue consumer's retries and batch wait (the demo shortens them). Prints `edge listening on <url>` when ready and
// the worker's JSON log lines on stdout.

import { startEdge } from "./tests/support/edge.mjs";

const SECRETS = ["SHOPIFY_SECRET", "SHOPIFY_PREVIOUS_SECRET", "EDGE_SIGNING_KEY"];
const OVERRIDABLE = [
  "EDGE_SIGNING_KEY_ID", "SHOP_ALLOWLIST", "MAX_BODY_BYTES", "RETRY_BASE_DELAY_SECS", "RETRY_MAX_DELAY_SECS", "ORIGIN_TIMEOUT_MS",
  "DLQ_PARK_AFTER_ATTEMPTS",
];
// Secrets only from the environment: no built-in value, not even the tests' published ones.
const missing = ["ORIGIN_URL", "SHOPIFY_SECRET", "EDGE_SIGNING_KEY"].filter((k) => !process.env[k]);
if (missing.length > 0) {
  console.error(`edge/serve.mjs: ${missing.join(", ")} must be set in the environment; refusing to start`);
  process.exit(2);
}
const secrets = Object.fromEntries(SECRETS.filter((k) => process.env[k]).map((k) => [k, process.env[k]]));
const vars = Object.fromEntries(OVERRIDABLE.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]));
const portArg = process.argv.indexOf("--port");
const port = portArg > 0 ? Number(process.argv[portArg + 1]) : 8787;

const consumers = {};
if (process.env.QUEUE_MAX_RETRIES || process.env.QUEUE_BATCH_TIMEOUT_SECS) {
  const main = {};
  if (process.env.QUEUE_MAX_RETRIES) main.maxRetries = Number(process.env.QUEUE_MAX_RETRIES);
  if (process.env.QUEUE_BATCH_TIMEOUT_SECS) main.maxBatchTimeout = Number(process.env.QUEUE_BATCH_TIMEOUT_SECS);
  consumers["wholesail-webhooks"] = main;
  consumers["wholesail-webhooks-dlq"] = { maxBatchTimeout: main.maxBatchTimeout ?? 5 };
}

const edge = await startEdge({ originUrl: process.env.ORIGIN_URL, secrets, vars, consumers, port, echoLogs: true, keepLogs: false });
console.log(`edge listening on ${edge.url}`);
const stop = async () => {
  await edge.mf.dispose();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
