// The edge worker in workerd against the real origin service (`origin serve`, intake only)
// on its own fresh PostgreSQL database: what Shopify delivers through the edge ends up as inbox
// rows, once each, across an origin restart. `cargo xtask test` sets EDGE_TEST_ORIGIN_BIN (the
// built `origin` binary) and DATABASE_URL (the local PostgreSQL server); without them the
// suite is skipped.

import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";

import { deliver, fixture, SHOP, SIGNING_KEY, SIGNING_KEY_ID, startEdge, TEST_SECRETS } from "./support/edge.mjs";
import { waitFor } from "./support/origin.mjs";

const ORIGIN_BIN = process.env.EDGE_TEST_ORIGIN_BIN;
const SERVER_URL = process.env.DATABASE_URL;
const skip = !ORIGIN_BIN || !SERVER_URL ? "EDGE_TEST_ORIGIN_BIN and DATABASE_URL are not set" : false;

const database = `wholesail_edge_e2e_${process.pid}`;
let databaseUrl;
let originPort;
let originDir;
let origin;
let edge;

function psql(url, sql) {
  return execFileSync("psql", [url, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql], { encoding: "utf8" }).trim();
}

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startOrigin() {
  const child = spawn(ORIGIN_BIN, ["--config", join(originDir, "origin.toml"), "serve"], {
    stdio: ["ignore", "ignore", "pipe"],
    // Only this file configures origin: no WHOLESAIL_* from the caller's environment.
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("WHOLESAIL_"))),
      RUST_BACKTRACE: "0",
    },
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  child.exited = new Promise((resolve) => child.on("exit", resolve));
  await waitFor(`origin on port ${originPort} (stderr: ${stderr.slice(-500)})`, async () => {
    if (child.exitCode !== null) throw new Error(`origin exited ${child.exitCode}: ${stderr.slice(-2000)}`);
    try {
      return (await fetch(`http://127.0.0.1:${originPort}/livez`)).ok;
    } catch {
      return false;
    }
  });
  return child;
}

async function stopOrigin() {
  origin.kill("SIGKILL");
  await origin.exited;
}

const rows = (where) => Number(psql(databaseUrl, `SELECT count(*) FROM inbox WHERE ${where}`));

describe("edge with the real origin", { skip }, () => {
  before(async () => {
    const u = new URL(SERVER_URL);
    psql(SERVER_URL, `DROP DATABASE IF EXISTS ${database}`);
    psql(SERVER_URL, `CREATE DATABASE ${database}`);
    u.pathname = `/${database}`;
    databaseUrl = u.href;
    originPort = await freePort();
    originDir = mkdtempSync(join(tmpdir(), "wholesail-edge-e2e-"));
    writeFileSync(
      join(originDir, "origin.toml"),
      [
        `bind = "127.0.0.1:${originPort}"`,
        `database_url = "${databaseUrl}"`,
        "pool_size = 4",
        "[[internal.keys]]",
        `id = "${SIGNING_KEY_ID}"`,
        `secret = "${SIGNING_KEY}"`,
        "[worker]",
        "concurrency = 0",
      ].join("\n"),
    );
    origin = await startOrigin();
    edge = await startEdge({
      secrets: TEST_SECRETS,
      originUrl: `http://127.0.0.1:${originPort}`,
      vars: { RETRY_BASE_DELAY_SECS: "1", RETRY_MAX_DELAY_SECS: "1", ORIGIN_TIMEOUT_MS: "5000" },
      consumers: {
        "wholesail-webhooks": { maxBatchTimeout: 0.2, maxRetries: 20 },
        "wholesail-webhooks-dlq": { maxBatchTimeout: 0.2 },
      },
    });
  });

  after(async () => {
    await edge?.mf.dispose();
    if (origin) await stopOrigin();
    if (SERVER_URL) psql(SERVER_URL, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  });

  test("a delivered order becomes one stripped inbox row, and its duplicate adds none", async () => {
    const body = fixture("order-3.json");
    assert.equal((await deliver(edge.url, body, { id: "e2e-1" })).status, 200);
    assert.equal((await deliver(edge.url, body, { id: "e2e-1" })).status, 200);
    await waitFor("e2e-1 in the inbox", () => rows("webhook_id = 'e2e-1'") === 1);
    const row = JSON.parse(
      psql(databaseUrl, "SELECT row_to_json(i) FROM (SELECT shop, topic, source, stripping, original_bytes, payload FROM inbox WHERE webhook_id = 'e2e-1') i"),
    );
    assert.equal(row.shop, SHOP);
    assert.equal(row.topic, "orders/create");
    assert.equal(row.source, "edge");
    assert.equal(row.stripping, "allowlist");
    assert.equal(Number(row.original_bytes), body.length);
    assert.equal(row.payload.line_items.length, 3);
    assert.equal(row.payload.browser_ip, undefined);
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(rows("webhook_id = 'e2e-1'"), 1);
  });

  test("a 1,000-line order arrives whole through R2", async () => {
    assert.equal((await deliver(edge.url, fixture("order-1000.json"), { id: "e2e-big" })).status, 200);
    await waitFor("e2e-big in the inbox", () => rows("webhook_id = 'e2e-big'") === 1, 30_000);
    assert.equal(Number(psql(databaseUrl, "SELECT jsonb_array_length(payload->'line_items') FROM inbox WHERE webhook_id = 'e2e-big'")), 1000);
  });

  test("a malformed body is quarantined at origin", async () => {
    assert.equal((await deliver(edge.url, Buffer.from("{not json"), { id: "e2e-bad" })).status, 200);
    await waitFor("e2e-bad in the inbox", () => rows("webhook_id = 'e2e-bad'") === 1);
    assert.equal(psql(databaseUrl, "SELECT status FROM inbox WHERE webhook_id = 'e2e-bad'"), "quarantined");
  });

  test("what outlives the main queue's retries reaches origin's dead letters", async () => {
    const dlqEdge = await startEdge({
      secrets: TEST_SECRETS,
      originUrl: `http://127.0.0.1:${originPort}`,
      vars: { RETRY_BASE_DELAY_SECS: "1", RETRY_MAX_DELAY_SECS: "1", ORIGIN_TIMEOUT_MS: "5000" },
      consumers: {
        "wholesail-webhooks": { maxBatchTimeout: 0.2, maxRetries: 1 },
        "wholesail-webhooks-dlq": { maxBatchTimeout: 0.2, maxRetries: 20 },
      },
    });
    try {
      await stopOrigin();
      assert.equal((await deliver(dlqEdge.url, fixture("order-1.json"), { id: "e2e-dlq-1" })).status, 200);
      await waitFor("a failed attempt on the dead-letter intake", () =>
        dlqEdge.logs.some((l) => l.includes('"outcome":"failed"') && l.includes("/internal/dead-letters")),
      );
      origin = await startOrigin();
      await waitFor("e2e-dlq-1 stored as a dead letter", () => rows("webhook_id = 'e2e-dlq-1' AND source = 'edge_dlq' AND status = 'dead'") === 1, 30_000);
    } finally {
      await dlqEdge.mf.dispose();
    }
  });

  test("parked envelopes: listed, a shop's purged, the rest recovered into origin by one command", async () => {
    const parkEdge = await startEdge({
      secrets: TEST_SECRETS,
      originUrl: `http://127.0.0.1:${originPort}`,
      vars: { RETRY_BASE_DELAY_SECS: "1", RETRY_MAX_DELAY_SECS: "1", ORIGIN_TIMEOUT_MS: "5000", DLQ_PARK_AFTER_ATTEMPTS: "1" },
      consumers: {
        "wholesail-webhooks": { maxBatchTimeout: 0.2, maxRetries: 0 },
        "wholesail-webhooks-dlq": { maxBatchTimeout: 0.2, maxRetries: 5 },
      },
    });
    // Asynchronous, so Miniflare's side in this process keeps serving while the CLI runs.
    const cli = async (...args) =>
      (
        await promisify(execFile)(ORIGIN_BIN, ["--config", join(originDir, "origin.toml"), "parked", ...args, "--edge-url", parkEdge.url], {
          encoding: "utf8",
          env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("WHOLESAIL_"))),
        })
      ).stdout;
    const lines = (out) => out.split("\n").filter(Boolean).map((l) => JSON.parse(l));
    try {
      // Unsigned requests are refused.
      assert.equal((await fetch(`${parkEdge.url}/internal/parked`, { method: "POST", body: '{"op":"list","prefix":"rejected/"}' })).status, 401);
      await stopOrigin();
      const other = "other-shop.myshopify.com";
      assert.equal((await deliver(parkEdge.url, fixture("order-1.json"), { id: "e2e-parked-1" })).status, 200);
      assert.equal((await deliver(parkEdge.url, fixture("order-1.json"), { id: "e2e-parked-2", shop: other })).status, 200);
      await waitFor("both envelopes parked in R2", () => parkEdge.logs.filter((l) => l.includes('"outcome":"undelivered"')).length === 2, 30_000);
      origin = await startOrigin();

      const listed = lines(await cli("list", "--json"));
      assert.equal(listed.length, 2);
      assert.ok(listed.every((o) => o.key.startsWith("undelivered/") && o.size > 0), JSON.stringify(listed));

      const purged = JSON.parse(await cli("purge", "--shop", other));
      assert.equal(purged.deleted.length, 1);
      assert.ok(purged.deleted[0].startsWith("undelivered/e2e-parked-2/"));

      const recovered = lines(await cli("recover"));
      assert.deepEqual(recovered.map((r) => [r.webhook_id, r.result]), [["e2e-parked-1", "accepted"]]);
      assert.equal(rows("webhook_id = 'e2e-parked-1' AND source = 'edge'"), 1);
      assert.equal(rows("webhook_id = 'e2e-parked-2'"), 0);
      assert.deepEqual(lines(await cli("list", "--json")), []);
      // Running it again finds nothing to do.
      assert.deepEqual(lines(await cli("recover")), []);
    } finally {
      await parkEdge.mf.dispose();
    }
  });

  test("origin killed and restarted: every delivery accepted meanwhile lands once", async () => {
    await stopOrigin();
    const ids = Array.from({ length: 30 }, (_, i) => `e2e-outage-${i}`);
    const answers = await Promise.all(ids.map((id) => deliver(edge.url, fixture("order-1.json"), { id })));
    assert.deepEqual(answers.map((r) => r.status), ids.map(() => 200));
    await new Promise((r) => setTimeout(r, 2500));
    origin = await startOrigin();
    await waitFor("all 30 in the inbox", () => rows("webhook_id LIKE 'e2e-outage-%'") === 30, 40_000);
    assert.equal(rows("webhook_id LIKE 'e2e-outage-%' AND source = 'edge'"), 30);
  });
});
