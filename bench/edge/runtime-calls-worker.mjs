// The runtime calls every edge worker makes, for `cargo xtask bench edge`: read the body, check
// its HMAC with crypto.subtle, hash it with SHA-256, send a queue message of the size the
// stripped envelope has (17% of an orders body, as the allowlist keeps), one log line, one
// count, 200 — through the JavaScript reference's own `verify`, `hex` and `count`. No parsing,
// no stripping, no envelope: what is left above this in the Rust and JavaScript workers is
// their own work. Both workers make these same calls, so the Rust worker's cost above the
// floor cannot go below this worker's.

import { count, hex, verify } from "./reference-worker.mjs";

export default {
  async fetch(request, env) {
    const body = new Uint8Array(await request.arrayBuffer());
    const h = request.headers;
    if (!(await verify(body, h.get("x-shopify-hmac-sha256"), [env.SHOPIFY_SECRET, env.SHOPIFY_PREVIOUS_SECRET]))) {
      return new Response('{"error":"HMAC does not match"}', { status: 401 });
    }
    const bodySha256 = hex(await crypto.subtle.digest("SHA-256", body));
    const kept = new TextDecoder().decode(body.subarray(0, Math.floor(body.length * 0.17)));
    // Text, not parsed by the queue: the kept bytes as they are (the workers' messages are
    // JSON of about this size; building them is their own work).
    await env.WEBHOOKS.send(`{"inline":{"body_sha256":"${bodySha256}","kept":${kept}}}`, { contentType: "text" });
    const shop = h.get("x-shopify-shop-domain") ?? "";
    const topic = h.get("x-shopify-topic") ?? "";
    const webhookId = h.get("x-shopify-webhook-id");
    console.log(JSON.stringify({ level: "info", event: "webhook", outcome: "queued", status: 200, topic, shop, bytes_in: body.length }));
    count(env, { outcome: "accepted", reason: "inline", topic, shop, payload: "stripped", bytes: body.length, webhookId });
    return new Response(`{"status":"queued","webhook_id":"${webhookId}"}`, {
      headers: { "content-type": "application/json" },
    });
  },
};
