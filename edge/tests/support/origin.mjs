// A stand-in for origin's batch intakes, for the edge worker's workerd tests and benchmark.
//
// It does what origin promises in the contract: checks `X-Wholesail-Signature` exactly
// (HMAC-SHA256 over "wholesail-v2\n" + kid + "\n" + t + "\n" + path + "\n" + body, base64,
// header `v2,kid=..,t=..,sig=..`, timestamp within 300 s), parses each envelope of
// `{"envelopes":[...]}` separately, deduplicates by webhook id and answers a `BatchResponse` in
// input order. Tests can make it fail (HTTP 500), go down (connections reset) or reject ids.

import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";

const TOLERANCE_SECS = 300;

/** Verifies a v2 envelope signature header of a request to `path`; returns the key id or throws with the reason. */
export function verifySignature(header, path, body, keys, nowSecs = Math.floor(Date.now() / 1000)) {
  const parts = (header ?? "").split(",");
  if (parts[0] !== "v2") throw new Error("unsupported signature version");
  const fields = Object.fromEntries(
    parts.slice(1).map((p) => {
      const i = p.indexOf("=");
      return [p.slice(0, i), p.slice(i + 1)];
    }),
  );
  const { kid, t, sig } = fields;
  if (!kid || !t || !sig || Object.keys(fields).length !== 3) throw new Error("malformed signature");
  if (!/^\d+$/.test(t)) throw new Error("t is not an integer");
  const key = keys[kid];
  if (key === undefined) throw new Error(`unknown key id ${kid}`);
  if (Math.abs(Number(t) - nowSecs) > TOLERANCE_SECS) throw new Error("timestamp outside window");
  const mac = createHmac("sha256", key)
    .update(`wholesail-v2\n${kid}\n${t}\n${path}\n`)
    .update(body)
    .digest();
  const given = Buffer.from(sig, "base64");
  if (given.length !== mac.length || !timingSafeEqual(given, mac)) throw new Error("signature mismatch");
  return kid;
}

/** Starts the receiver on 127.0.0.1 with a free port. */
export async function startOrigin({ keys }) {
  const origin = {
    url: "",
    /** Per intake: "ok", "fail" (HTTP 500) or "down" (connection reset). */
    mode: { webhooks: "ok", "dead-letters": "ok" },
    /** Webhook ids answered `rejected`. */
    reject: new Set(),
    /** Stored envelopes by webhook id, per intake. */
    records: { webhooks: new Map(), "dead-letters": new Map() },
    /** Every request: intake, webhook ids, what was answered. */
    requests: [],
    badSignatures: 0,
    /** Bodies of requests, for size checks. */
    lastBodyBytes: 0,
  };
  const server = createServer((req, res) => {
    const intake = { "/internal/webhooks": "webhooks", "/internal/dead-letters": "dead-letters" }[req.url];
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      if (req.method !== "POST" || intake === undefined) {
        res.writeHead(404).end();
        return;
      }
      const mode = origin.mode[intake];
      let ids = [];
      try {
        ids = JSON.parse(body).envelopes.map((e) => e?.meta?.webhook_id ?? null);
      } catch {
        // counted below as a bad request
      }
      origin.requests.push({ intake, ids, mode });
      origin.lastBodyBytes = body.length;
      if (mode === "down") {
        req.socket.destroy();
        return;
      }
      if (mode === "fail") {
        res.writeHead(500).end("origin is failing");
        return;
      }
      try {
        verifySignature(req.headers["x-wholesail-signature"], req.url, body, keys);
      } catch (e) {
        origin.badSignatures++;
        res.writeHead(401, { "content-type": "text/plain" }).end(String(e.message));
        return;
      }
      const batch = JSON.parse(body);
      const store = origin.records[intake];
      const results = batch.envelopes.map((envelope) => {
        const id = envelope?.meta?.webhook_id;
        if (typeof id !== "string") return { webhook_id: null, status: "rejected", reason: "no webhook id" };
        if (origin.reject.has(id)) return { webhook_id: id, status: "rejected", reason: "test asked to reject" };
        if (store.has(id)) return { webhook_id: id, status: "duplicate" };
        store.set(id, envelope);
        return { webhook_id: id, status: "accepted" };
      });
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ results }));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin.url = `http://127.0.0.1:${server.address().port}`;
  origin.close = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(resolve);
    });
  return origin;
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor(what, check, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
