// What the edge counts, in workerd (Miniflare): one `"event":"count"` JSON line and one
// Analytics Engine data point per outcome, with the fields edge/README.md documents ("Counting").
// The dataset binding is a recorder (support/edge.mjs, `dataPoints: "record"`) that prints each
// data point the worker writes; Miniflare's own dataset simulator keeps nothing to read back.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { deliver, fixture, PREVIOUS_SECRET, SHOP, SHOPIFY_SECRET, shopifyHeaders, SIGNING_KEY, SIGNING_KEY_ID, startEdge, TEST_SECRETS } from "./support/edge.mjs";
import { startOrigin, waitFor } from "./support/origin.mjs";

const MAIN = "wholesail-webhooks";
const DLQ = "wholesail-webhooks-dlq";
const MAX_BODY = 3_000_000;
const MAIN_MAX_RETRIES = 1;
const DATASET = "wholesail_edge";
const STRANGER = "stranger.myshopify.com";

let origin;
let edge;

before(async () => {
  origin = await startOrigin({ keys: { [SIGNING_KEY_ID]: SIGNING_KEY } });
  edge = await startEdge({
    secrets: TEST_SECRETS,
    originUrl: origin.url,
    dataPoints: "record",
    vars: {
      COUNT_LOG_LINES: "true", // lines as well as data points, to compare them
      SHOP_ALLOWLIST: SHOP,
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

const json = (l) => JSON.parse(l);
const countLines = (e = edge) => e.logs.filter((l) => l.startsWith("{") && json(l).event === "count").map(json);
const dataPoints = (e = edge) => e.logs.filter((l) => l.startsWith("data-point ")).map((l) => json(l.slice("data-point ".length)));
const countsFor = (id) => countLines().filter((c) => c.webhook_id === id);
/** Waits for `n` count lines of `id` that match `where`; returns all of `id`'s lines. */
const counted = (id, where, n = 1) =>
  waitFor(`${n} count(s) of ${id} matching ${JSON.stringify(where)}`, () => {
    const lines = countsFor(id);
    return lines.filter((c) => Object.entries(where).every(([k, v]) => c[k] === v)).length >= n && lines;
  }, 30_000);
/**
 * Runs `act` and returns the one intake count line it added (a refusal carries no verified
 * webhook id; the consumer may count earlier messages meanwhile).
 */
async function oneNewCount(act) {
  const intakeLines = () => countLines().filter((c) => c.stage === "intake");
  const before = intakeLines().length;
  const res = await act();
  await waitFor("a new intake count line", () => intakeLines().length > before);
  const added = intakeLines().slice(before);
  assert.equal(added.length, 1, `exactly one count: ${JSON.stringify(added)}`);
  return { res, count: added[0] };
}

const intake = (fields) => ({ level: "info", event: "count", stage: "intake", attempts: 0, ...fields });

describe("intake counts", () => {
  test("an accepted delivery counts as accepted inline, then as delivered when origin has it", async () => {
    const body = fixture("order-1.json");
    assert.equal((await deliver(edge.url, body, { id: "count-ok" })).status, 200);
    const lines = await counted("count-ok", { outcome: "delivered" });
    assert.equal(lines.length, 2, JSON.stringify(lines));
    assert.deepEqual(lines[0], intake({
      outcome: "accepted", reason: "inline", topic: "orders/create", shop: SHOP,
      payload: "stripped", bytes: body.length, webhook_id: "count-ok",
    }));
    const delivered = lines[1];
    assert.equal(delivered.stage, "queue");
    assert.equal(delivered.reason, "new");
    assert.equal(delivered.topic, "orders/create");
    assert.equal(delivered.shop, SHOP);
    assert.equal(delivered.attempts, 1);
    assert.ok(delivered.bytes > 0 && delivered.bytes < body.length, "the stripped envelope's size");
  });

  test("an order too large for a queue message counts as accepted through R2", async () => {
    const body = fixture("order-1000.json");
    assert.equal((await deliver(edge.url, body, { id: "count-big" })).status, 200);
    const lines = await counted("count-big", { outcome: "delivered" });
    assert.deepEqual(lines.map((c) => [c.stage, c.outcome, c.reason]), [["intake", "accepted", "r2"], ["queue", "delivered", "new"]]);
    assert.equal(lines[0].bytes, body.length);
  });

  test("malformed JSON counts as accepted with a malformed payload", async () => {
    const body = Buffer.from('{"id": 1, "line_items": [');
    assert.equal((await deliver(edge.url, body, { id: "count-malformed" })).status, 200);
    const [accepted, delivered] = await counted("count-malformed", { outcome: "delivered" });
    assert.equal(delivered.stage, "queue");
    assert.equal(accepted.reason, "inline");
    assert.equal(accepted.payload, "malformed");
  });

  test("each refusal counts once with its reason, and unverified requests carry no topic or shop", async () => {
    const small = fixture("order-1.json");
    const cases = [
      ["bad_hmac", 401, () => deliver(edge.url, small, { id: "r-hmac", secret: "not-the-secret" })],
      ["too_large", 413, () => deliver(edge.url, Buffer.alloc(MAX_BODY + 1, "a"), { id: "r-big" })],
      ["bad_topic", 400, () => deliver(edge.url, small, { id: "r-topic", topic: "Orders Create" })],
      ["bad_shop", 400, () => deliver(edge.url, small, { id: "r-shop", shop: "shop.example.com" })],
      ["bad_header", 400, () => {
        const { "x-shopify-webhook-id": _, ...headers } = shopifyHeaders(small, { id: "r-header" });
        return fetch(`${edge.url}/webhooks`, { method: "POST", body: small, headers });
      }],
    ];
    for (const [reason, status, act] of cases) {
      const { res, count } = await oneNewCount(act);
      assert.equal(res.status, status, reason);
      const bytes = reason === "too_large" ? MAX_BODY + 1 : small.length; // refused before reading: the declared size
      assert.deepEqual(count, intake({ outcome: "refused", reason, topic: "", shop: "", payload: "", bytes, webhook_id: "" }));
    }
    const { res, count } = await oneNewCount(() => deliver(edge.url, small, { id: "r-stranger", shop: STRANGER }));
    assert.equal(res.status, 403);
    assert.deepEqual(count, intake({
      outcome: "refused", reason: "shop_not_allowed", topic: "", shop: STRANGER, payload: "", bytes: small.length, webhook_id: "",
    }), "the shop is known once the HMAC checked out");
  });
});

describe("queue counts", () => {
  test("a duplicate counts as delivered duplicate", async () => {
    const body = fixture("order-3.json");
    assert.equal((await deliver(edge.url, body, { id: "count-dup" })).status, 200);
    await counted("count-dup", { outcome: "delivered" });
    assert.equal((await deliver(edge.url, body, { id: "count-dup" })).status, 200);
    const lines = await counted("count-dup", { outcome: "delivered" }, 2);
    assert.deepEqual(lines.filter((c) => c.stage === "queue").map((c) => c.reason), ["new", "duplicate"]);
  });

  test("an envelope origin rejects counts as parked rejected", async () => {
    origin.reject.add("count-rejected");
    assert.equal((await deliver(edge.url, fixture("order-1.json"), { id: "count-rejected" })).status, 200);
    const lines = await counted("count-rejected", { outcome: "parked" });
    assert.deepEqual(lines.map((c) => [c.stage, c.outcome, c.reason]), [["intake", "accepted", "inline"], ["queue", "parked", "rejected"]]);
  });

  test("origin failing counts each retry, then dead_lettered once the dead-letter intake has it", async () => {
    origin.mode.webhooks = "fail";
    try {
      assert.equal((await deliver(edge.url, fixture("order-1.json"), { id: "count-doomed" })).status, 200);
      const lines = await counted("count-doomed", { outcome: "dead_lettered" });
      const queue = lines.filter((c) => c.stage === "queue");
      assert.deepEqual(queue.map((c) => [c.outcome, c.reason, c.attempts]), [
        ["retried", "origin_status", 1],
        ["retried", "origin_status", 2],
      ]);
      const dead = lines.filter((c) => c.stage === "dead_letter_queue");
      assert.deepEqual(dead.map((c) => [c.outcome, c.reason, c.attempts, c.topic, c.shop]), [["dead_lettered", "new", 1, "orders/create", SHOP]]);
    } finally {
      origin.mode.webhooks = "ok";
    }
  });

  test("a dead letter origin never takes counts as parked undelivered", async () => {
    origin.mode.webhooks = "fail";
    origin.mode["dead-letters"] = "fail";
    try {
      assert.equal((await deliver(edge.url, fixture("order-1.json"), { id: "count-lost" })).status, 200);
      const lines = await counted("count-lost", { outcome: "parked" });
      const dead = lines.filter((c) => c.stage === "dead_letter_queue");
      assert.deepEqual(dead.map((c) => [c.outcome, c.reason, c.attempts]), [
        ["retried", "origin_status", 1],
        ["parked", "undelivered", 2],
      ]);
    } finally {
      origin.mode.webhooks = "ok";
      origin.mode["dead-letters"] = "ok";
    }
  });
});

describe("data points", () => {
  test("every count line has exactly one data point with the same fields", async () => {
    const lines = countLines();
    assert.ok(lines.length >= 20, `${lines.length} count lines`);
    await waitFor("as many data points as count lines", () => dataPoints().length === lines.length);
    const expected = lines.map((c) => ({
      dataset: DATASET,
      blobs: [c.outcome, c.reason, c.topic, c.shop, c.stage, c.payload],
      doubles: [1, c.bytes, c.attempts],
      indexes: c.shop ? [c.shop] : [],
    }));
    const sorted = (xs) => xs.map(({ dataset, blobs, doubles, indexes }) => JSON.stringify({ dataset, blobs, doubles, indexes })).sort();
    assert.deepEqual(sorted(dataPoints()), sorted(expected));
  });

  test("neither count lines nor data points carry a secret or payload text", () => {
    const text = edge.logs.filter((l) => l.startsWith("data-point ") || (l.startsWith("{") && json(l).event === "count")).join("\n");
    for (const secret of [SHOPIFY_SECRET, PREVIOUS_SECRET, SIGNING_KEY, "not-the-secret"]) assert.ok(!text.includes(secret));
    const order = JSON.parse(fixture("order-1.json"));
    for (const value of [order.email, order.browser_ip, String(order.id)]) assert.ok(!text.includes(value), value);
  });
});

describe("which export", () => {
  test("by default a bound dataset gets the data points and no count lines are written", async () => {
    const quiet = await startEdge({ secrets: TEST_SECRETS, consumers: false, dataPoints: "record" });
    try {
      assert.equal((await deliver(quiet.url, fixture("order-1.json"), { id: "quiet-1" })).status, 200);
      // A count line would be written just before the data point, in the same call.
      await waitFor("the data point", () => dataPoints(quiet).length > 0);
      assert.deepEqual(dataPoints(quiet).map((p) => p.blobs.slice(0, 2)), [["accepted", "inline"]]);
      assert.equal(countLines(quiet).length, 0);
    } finally {
      await quiet.mf.dispose();
    }
  });

  test("no binding: deliveries are answered as before and counted in log lines", async () => {
    const unbound = await startEdge({ secrets: TEST_SECRETS, consumers: false, dataPoints: "unbound" });
    try {
      assert.equal((await deliver(unbound.url, fixture("order-1.json"), { id: "unbound-1" })).status, 200);
      await waitFor("the count line", () => countLines(unbound).some((c) => c.webhook_id === "unbound-1"));
      assert.equal(dataPoints(unbound).length, 0);
      assert.ok(!unbound.logs.some((l) => /"level":"(warn|error)"/.test(l)), unbound.logs.join("\n"));
    } finally {
      await unbound.mf.dispose();
    }
  });

  test("a binding that is not a dataset fails no request and is reported once", async () => {
    const wrong = await startEdge({
      secrets: TEST_SECRETS,
      consumers: false,
      dataPoints: "unbound",
      vars: { EDGE_COUNTS: "not-a-dataset", COUNT_LOG_LINES: "true" },
    });
    try {
      for (const id of ["wrong-1", "wrong-2"]) assert.equal((await deliver(wrong.url, fixture("order-1.json"), { id })).status, 200);
      await waitFor("both count lines", () => countLines(wrong).length === 2);
      const failures = wrong.logs.filter((l) => l.includes('"outcome":"write_failed"'));
      assert.equal(failures.length, 1, wrong.logs.join("\n"));
      assert.match(failures[0], /EDGE_COUNTS is not an Analytics Engine dataset/);
    } finally {
      await wrong.mf.dispose();
    }
  });
});
