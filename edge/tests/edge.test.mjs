// The edge worker in workerd (Miniflare), against a local stand-in for origin that checks
// the envelope signatures and deduplicates like origin does. Run by `cargo xtask test` after
// the worker is built (edge/build) and the fixtures are written (target/edge-fixtures).

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { deliver, fixture, PREVIOUS_SECRET, ROOT, SHOP, SHOPIFY_SECRET, shopifyHeaders, SIGNING_KEY, SIGNING_KEY_ID, startEdge, TEST_SECRETS } from "./support/edge.mjs";
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { request as httpRequest } from "node:http";
import { connect } from "node:net";

import { startOrigin, verifySignature, waitFor } from "./support/origin.mjs";

const MAIN = "wholesail-webhooks";
const DLQ = "wholesail-webhooks-dlq";
const MAX_BODY = 3_000_000;
const MAIN_MAX_RETRIES = 3;

let origin;
let edge;

before(async () => {
  origin = await startOrigin({ keys: { [SIGNING_KEY_ID]: SIGNING_KEY } });
  edge = await startEdge({
    secrets: TEST_SECRETS,
    originUrl: origin.url,
    vars: {
      SHOP_ALLOWLIST: `${SHOP}, other-allowed.myshopify.com`,
      MAX_BODY_BYTES: String(MAX_BODY),
      RETRY_BASE_DELAY_SECS: "1",
      RETRY_MAX_DELAY_SECS: "1",
      ORIGIN_TIMEOUT_MS: "3000",
      DLQ_PARK_AFTER_ATTEMPTS: "2",
    },
    consumers: {
      [MAIN]: { maxBatchTimeout: 0.2, maxRetries: MAIN_MAX_RETRIES },
      [DLQ]: { maxBatchTimeout: 0.2, maxRetries: 5 },
    },
  });
});

after(async () => {
  await edge?.mf.dispose();
  await origin?.close();
});

const small = () => fixture("order-1.json");

/**
 * POSTs to `/webhooks` with `Transfer-Encoding: chunked` (no Content-Length); `write(req)`
 * sends the body and may leave it open. Resolves with the status and body of the answer, or
 * rejects if none comes within 15 s.
 */
function postChunked(url, headers, write) {
  const { "content-length": _, ...rest } = headers;
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}/webhooks`, { method: "POST", headers: { ...rest, "transfer-encoding": "chunked" } });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error("no answer within 15 s"));
    }, 15_000);
    req.on("response", (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        clearTimeout(timer);
        req.destroy();
        resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() });
      });
    });
    req.on("error", (e) => {
      if (!req.destroyed) reject(e);
    });
    write(req);
  });
}
const requestsFor = (id, intake = "webhooks") => origin.requests.filter((r) => r.intake === intake && r.ids.includes(id));
/** The edge's JSON log lines about webhook `id` (the edge's own per-message record). */
const linesFor = (id) =>
  edge.logs
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l))
    .filter((l) => l.webhook_id === id);
/** Whether the edge put delivery `id` on the queue (it logs `queued` before answering 200). */
const queued = (id) => linesFor(id).some((l) => l.event === "webhook" && l.outcome === "queued");
/**
 * Waits until the consumer has settled `n` messages of `id` with one of `outcomes` (a settled
 * message is acknowledged, so it is never delivered again): after that, a count of origin's
 * requests is final, with no sleep standing in for "nothing more will come".
 */
const settled = (id, n = 1, outcomes = ["accepted", "duplicate"]) =>
  waitFor(`${n} settled message(s) of ${id}`, () =>
    linesFor(id).filter((l) => l.event === "forward" && outcomes.includes(l.outcome)).length >= n,
  );
const bucket = () => edge.mf.getR2Bucket("PAYLOADS");
const keys = async (prefix) => (await (await bucket()).list({ prefix })).objects.map((o) => o.key);

describe("origin stand-in", () => {
  test("it refuses envelope signatures that are tampered, stale or from an unknown key", () => {
    const keys = { k1: "secret" };
    const body = Buffer.from('{"envelopes":[]}');
    const now = 1_800_000_000;
    const path = "/internal/webhooks";
    const sig = (kid, t, b, key = "secret", p = path) =>
      `v2,kid=${kid},t=${t},sig=${createHmac("sha256", key).update(`wholesail-v2\n${kid}\n${t}\n${p}\n`).update(b).digest("base64")}`;
    assert.equal(verifySignature(sig("k1", now, body), path, body, keys, now), "k1");
    assert.throws(() => verifySignature(sig("k1", now, body), path, Buffer.from('{"envelopes":[1]}'), keys, now), /mismatch/);
    assert.throws(() => verifySignature(sig("k1", now, body, "other"), path, body, keys, now), /mismatch/);
    assert.throws(() => verifySignature(sig("k1", now, body, "secret", "/internal/dead-letters"), path, body, keys, now), /mismatch/);
    assert.throws(() => verifySignature(sig("k1", now - 301, body), path, body, keys, now), /window/);
    assert.throws(() => verifySignature(sig("k2", now, body), path, body, keys, now), /unknown key/);
    assert.throws(() => verifySignature("v1,kid=k1,t=1,sig=AA==", path, body, keys, now), /version/);
  });
});

describe("http", () => {
  test("health answers 200", async () => {
    const res = await fetch(`${edge.url}/health`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: "ok" });
  });

  test("unknown paths and methods are refused", async () => {
    assert.equal((await fetch(`${edge.url}/nope`)).status, 404);
    assert.equal((await fetch(`${edge.url}/webhooks`)).status, 405);
  });
});

describe("intake", () => {
  test("valid delivery is forwarded once with a valid envelope signature", async () => {
    const body = small();
    const res = await deliver(edge.url, body, { id: "valid-1" });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: "queued", webhook_id: "valid-1" });
    const env = await waitFor("valid-1 at origin", () => origin.records.webhooks.get("valid-1"));
    assert.equal(origin.badSignatures, 0);
    assert.equal(env.meta.topic, "orders/create");
    assert.equal(env.meta.shop, SHOP);
    assert.equal(env.meta.event_id, "event-valid-1");
    assert.equal(env.original_bytes, body.length);
    const order = env.payload.json.body;
    assert.equal(env.payload.json.stripping, "allowlist");
    assert.equal(order.id, JSON.parse(body).id);
    assert.equal(order.line_items.length, 1);
    assert.equal(order.browser_ip, undefined, "stripped fields must not reach origin");
    await settled("valid-1");
    assert.equal(requestsFor("valid-1").length, 1, "forwarded exactly once");
  });

  test("delivery signed with the previous secret is accepted during a rotation", async () => {
    const res = await deliver(edge.url, small(), { id: "rotated-1", secret: PREVIOUS_SECRET });
    assert.equal(res.status, 200);
    await waitFor("rotated-1 at origin", () => origin.records.webhooks.get("rotated-1"));
  });

  test("wrong HMAC is 401 and nothing is enqueued", async () => {
    const wrong = await deliver(edge.url, small(), { id: "forged-1", secret: "not-the-secret" });
    assert.equal(wrong.status, 401);
    const compliance = await deliver(edge.url, Buffer.from('{"shop_id":1}'), {
      id: "forged-2",
      topic: "shop/redact",
      secret: "not-the-secret",
    });
    assert.equal(compliance.status, 401, "compliance topics answer 401 on an invalid HMAC");
    // A genuine delivery sent after them arrives; the forged ones never do.
    assert.equal((await deliver(edge.url, small(), { id: "after-forged" })).status, 200);
    await waitFor("after-forged at origin", () => origin.records.webhooks.get("after-forged"));
    for (const id of ["forged-1", "forged-2"]) {
      assert.equal(queued(id), false, `${id} must not be queued`);
      assert.equal(requestsFor(id).length, 0, `${id} must not be forwarded`);
    }
  });

  test("body over the cap is 413", async () => {
    const body = Buffer.alloc(MAX_BODY + 1, "a");
    const res = await deliver(edge.url, body, { id: "too-big-1" });
    assert.equal(res.status, 413);
  });

  test("chunked delivery (no Content-Length) under the cap is accepted", async () => {
    const body = small();
    const res = await postChunked(edge.url, shopifyHeaders(body, { id: "chunked-1" }), (req) => {
      req.write(body.subarray(0, 100));
      req.end(body.subarray(100));
    });
    assert.equal(res.status, 200);
    await waitFor("chunked-1 at origin", () => origin.records.webhooks.get("chunked-1"));
  });

  test("chunked body over the cap is 413 while it is still streaming", async () => {
    // The body passes the cap and then never ends: only a worker that counts while reading
    // can answer (before, it buffered the whole body first and never answered).
    const headers = shopifyHeaders(Buffer.from("{}"), { id: "chunked-big" });
    const res = await postChunked(edge.url, headers, (req) => {
      const chunk = Buffer.alloc(256 * 1024, "a");
      for (let sent = 0; sent <= MAX_BODY; sent += chunk.length) req.write(chunk);
    });
    assert.equal(res.status, 413);
    assert.match(res.text, /larger than/);
    assert.equal(queued("chunked-big"), false);
    assert.equal(requestsFor("chunked-big").length, 0);
  });

  test("shop outside the allowlist is 403", async () => {
    const res = await deliver(edge.url, small(), { id: "stranger-1", shop: "stranger.myshopify.com" });
    assert.equal(res.status, 403);
  });

  test("authentic delivery with a malformed topic header is 400", async () => {
    const res = await deliver(edge.url, small(), { id: "bad-topic-1", topic: "Orders Create" });
    assert.equal(res.status, 400);
  });

  test("a body shorter than its Content-Length is 400, not 500", async () => {
    // Fails before the fix: the unreadable body surfaced as a worker error (500).
    const body = small();
    const headers = shopifyHeaders(body, { id: "short-1" });
    const { port, hostname } = new URL(edge.url);
    const answer = await new Promise((resolve, reject) => {
      const socket = connect({ port: Number(port), host: hostname }, () => {
        const head = Object.entries({ ...headers, host: `${hostname}:${port}`, "content-length": body.length + 100 })
          .map(([k, v]) => `${k}: ${v}`)
          .join("\r\n");
        socket.write(`POST /webhooks HTTP/1.1\r\n${head}\r\nconnection: close\r\n\r\n`);
        socket.end(body); // half-close: the declared length never arrives
      });
      let text = "";
      socket.on("data", (d) => (text += d));
      socket.on("end", () => resolve(text));
      socket.on("error", reject);
    });
    assert.match(answer, /^HTTP\/1\.1 400/, answer.split("\r\n")[0]);
    assert.equal(queued("short-1"), false, "nothing is enqueued for a short body");
    assert.equal(requestsFor("short-1").length, 0);
  });

  test("malformed JSON is forwarded for quarantine, not dropped", async () => {
    const res = await deliver(edge.url, Buffer.from('{"id": 1, "line_items": ['), { id: "malformed-1" });
    assert.equal(res.status, 200);
    const env = await waitFor("malformed-1 at origin", () => origin.records.webhooks.get("malformed-1"));
    assert.match(env.payload.malformed.reason, /not valid JSON/);
    assert.equal(Buffer.from(env.payload.malformed.body_base64, "base64").toString(), '{"id": 1, "line_items": [');
  });

  test("logs are JSON lines without secrets or payload contents", async () => {
    const lines = edge.logs.filter((l) => l.startsWith("{"));
    assert.ok(lines.some((l) => JSON.parse(l).outcome === "queued"), "accepted deliveries are logged");
    const text = edge.logs.join("\n");
    for (const secret of [SHOPIFY_SECRET, PREVIOUS_SECRET, SIGNING_KEY]) assert.ok(!text.includes(secret));
    const email = JSON.parse(small()).email;
    assert.ok(!text.includes(email), "payload contents are not logged");
  });
});

describe("weak secrets", () => {
  test("a short secret makes the first request fail with 500 and a log naming the binding, not the value", async () => {
    const weak = "weak-edge-secret";
    const misconfigured = await startEdge({ secrets: { ...TEST_SECRETS, SHOPIFY_SECRET: weak }, consumers: false });
    try {
      const res = await deliver(misconfigured.url, small(), { id: "weak-secret-1", secret: weak });
      assert.equal(res.status, 500);
      const line = await waitFor("the misconfigured log line", () =>
        misconfigured.logs.map((l) => (l.startsWith("{") ? JSON.parse(l) : {})).find((l) => l.outcome === "misconfigured"),
      );
      assert.match(line.reason, /SHOPIFY_SECRET is shorter than 32 bytes/);
      assert.ok(!misconfigured.logs.join("\n").includes(weak), "the weak value is not logged");
    } finally {
      await misconfigured.mf.dispose();
    }
  });
});

describe("delivery to origin", () => {
  test("oversized order goes through R2 and its object is removed once origin has it", async () => {
    const body = fixture("order-1000.json");
    origin.mode.webhooks = "down";
    try {
      const res = await deliver(edge.url, body, { id: "big-1" });
      assert.equal(res.status, 200);
      const stored = await waitFor("the oversized envelope in R2", async () => (await keys("oversized/")).length > 0 && keys("oversized/"));
      assert.equal(stored.length, 1);
      assert.match(stored[0], /^oversized\/acme-wholesale\.myshopify\.com\/big-1\//);
    } finally {
      origin.mode.webhooks = "ok";
    }
    const env = await waitFor("big-1 at origin", () => origin.records.webhooks.get("big-1"), 30_000);
    assert.equal(env.payload.json.body.line_items.length, 1000);
    assert.equal(env.original_bytes, body.length);
    await waitFor("the R2 copy deleted", async () => (await keys("oversized/")).length === 0);
  });

  test("duplicate delivery leaves one record at origin and both are acknowledged", async () => {
    const body = fixture("order-3.json");
    assert.equal((await deliver(edge.url, body, { id: "dup-1" })).status, 200);
    await waitFor("dup-1 at origin", () => origin.records.webhooks.get("dup-1"));
    assert.equal((await deliver(edge.url, body, { id: "dup-1" })).status, 200);
    await settled("dup-1", 2);
    assert.equal(requestsFor("dup-1").length, 2, "a duplicate verdict is acknowledged, not retried");
    assert.equal([...origin.records.webhooks.keys()].filter((k) => k === "dup-1").length, 1);
  });

  test("rejected envelope is parked in R2 with the reason and not retried", async () => {
    origin.reject.add("reject-1");
    assert.equal((await deliver(edge.url, small(), { id: "reject-1" })).status, 200);
    const parked = await waitFor("the parked envelope", async () => {
      const k = await keys("rejected/reject-1/");
      return k.length > 0 && k;
    });
    const record = await (await (await bucket()).get(parked[0])).json();
    assert.equal(record.reason, "test asked to reject");
    assert.equal(record.envelope.meta.webhook_id, "reject-1");
    await settled("reject-1", 1, ["rejected"]);
    assert.equal(requestsFor("reject-1").length, 1);
  });

  test("origin down for a while, then up: everything arrives once", async () => {
    origin.mode.webhooks = "down";
    const ids = Array.from({ length: 20 }, (_, i) => `outage-${i}`);
    try {
      const answers = await Promise.all(ids.map((id) => deliver(edge.url, small(), { id })));
      assert.deepEqual(answers.map((r) => r.status), ids.map(() => 200), "Shopify sees 200 while origin is down");
      // Every message fails at least once before origin comes back.
      await waitFor("a failed attempt of each", () =>
        ids.every((id) => origin.requests.some((r) => r.mode === "down" && r.ids.includes(id))),
      );
    } finally {
      origin.mode.webhooks = "ok";
    }
    await waitFor("all 20 at origin", () => ids.every((id) => origin.records.webhooks.has(id)), 30_000);
    for (const id of ids) await settled(id);
    for (const id of ids) {
      const answered = origin.requests.filter((r) => r.mode === "ok" && r.intake === "webhooks" && r.ids.includes(id));
      assert.equal(answered.length, 1, `${id} answered once after origin came back`);
      assert.equal(origin.records["dead-letters"].has(id), false);
    }
  });

  test("origin answering 500 is retried, then the message goes to the dead-letter intake", async () => {
    origin.mode.webhooks = "fail";
    try {
      assert.equal((await deliver(edge.url, small(), { id: "doomed-1" })).status, 200);
      const env = await waitFor("doomed-1 at the dead-letter intake", () => origin.records["dead-letters"].get("doomed-1"), 30_000);
      assert.equal(env.meta.webhook_id, "doomed-1");
      assert.equal(requestsFor("doomed-1").length, MAIN_MAX_RETRIES + 1, "every allowed delivery was tried");
      assert.equal(origin.records.webhooks.has("doomed-1"), false);
    } finally {
      origin.mode.webhooks = "ok";
    }
  });

  test("dead letters are parked in R2 when origin stays unreachable", async () => {
    origin.mode.webhooks = "fail";
    origin.mode["dead-letters"] = "fail";
    try {
      assert.equal((await deliver(edge.url, small(), { id: "lost-1" })).status, 200);
      const parked = await waitFor(
        "lost-1 parked under undelivered/",
        async () => {
          const k = await keys("undelivered/lost-1/");
          return k.length > 0 && k;
        },
        40_000,
      );
      const record = await (await (await bucket()).get(parked[0])).json();
      assert.equal(record.queue, DLQ);
      assert.equal(record.attempts, 2);
      assert.match(record.reason, /HTTP 500/);
      assert.equal(record.envelope.meta.webhook_id, "lost-1");
      assert.equal(requestsFor("lost-1", "dead-letters").length, 2);
    } finally {
      origin.mode.webhooks = "ok";
      origin.mode["dead-letters"] = "ok";
    }
  });
});

describe("serve.mjs", () => {
  /** Runs `node edge/serve.mjs --port 0` with exactly `env` (plus PATH); resolves once it listens or exits. */
  function serve(env) {
    const child = spawn(process.execPath, ["edge/serve.mjs", "--port", "0"], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stderr.on("data", (d) => (err += d));
    const started = new Promise((resolve) => {
      child.stdout.on("data", (d) => {
        out += d;
        const m = out.match(/edge listening on (\S+)/);
        if (m) resolve({ url: m[1] });
      });
      child.on("exit", (code) => resolve({ code, stderr: err }));
    });
    const stop = () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.on("exit", resolve);
        child.kill("SIGTERM");
      });
    return { started, stop };
  }

  test("it refuses to start without the secrets, naming them", async () => {
    const { started } = serve({ ORIGIN_URL: "http://127.0.0.1:9" });
    const r = await started;
    assert.equal(r.code, 2);
    assert.match(r.stderr, /SHOPIFY_SECRET, EDGE_SIGNING_KEY must be set/);
  });

  test("it has no built-in previous secret: a delivery signed with the tests' published one is 401", async () => {
    const { started, stop } = serve({
      ORIGIN_URL: "http://127.0.0.1:9",
      SHOPIFY_SECRET: "serve-test-current-secret-0123456789ab",
      EDGE_SIGNING_KEY: "serve-test-signing-key-0123456789abcdef",
    });
    try {
      const r = await started;
      assert.ok(r.url, `serve.mjs did not start: ${r.stderr}`);
      const body = small();
      assert.equal((await deliver(r.url, body, { id: "serve-published", secret: PREVIOUS_SECRET })).status, 401);
      assert.equal((await deliver(r.url, body, { id: "serve-current", secret: "serve-test-current-secret-0123456789ab" })).status, 200);
    } finally {
      await stop();
    }
  });
});
