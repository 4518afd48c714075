// The runtime calls every edge worker makes, for `cargo xtask bench edge`: read the body, check
// its HMAC with crypto.subtle, hash it with SHA-256, send a queue message of the size the
// stripped envelope has (17% of an orders body, as the allowlist keeps), one log line, one
// count, 200. No parsing, no stripping, no envelope: what is left above this in the Rust and
// JavaScript workers is their own work. Both workers make these same calls, so the Rust
// worker's cost above the floor cannot go below this worker's.

const keyCache = new Map();
function hmacKey(secret) {
  let key = keyCache.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    keyCache.set(secret, key);
  }
  return key;
}

const fromBase64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");

export default {
  async fetch(request, env) {
    const body = new Uint8Array(await request.arrayBuffer());
    const h = request.headers;
    const mac = fromBase64(h.get("x-shopify-hmac-sha256") ?? "");
    if (!(await crypto.subtle.verify("HMAC", await hmacKey(env.SHOPIFY_SECRET), mac, body))) {
      return new Response('{"error":"HMAC does not match"}', { status: 401 });
    }
    const bodySha256 = hex(await crypto.subtle.digest("SHA-256", body));
    const kept = new TextDecoder().decode(body.subarray(0, Math.floor(body.length * 0.17)));
    // Text, not parsed by the queue: the kept bytes as they are (the workers' messages are
    // JSON of about this size; building them is their own work).
    await env.WEBHOOKS.send(`{"inline":{"body_sha256":"${bodySha256}","kept":${kept}}}`, { contentType: "text" });
    const shop = h.get("x-shopify-shop-domain") ?? "";
    const topic = h.get("x-shopify-topic") ?? "";
    console.log(JSON.stringify({ level: "info", event: "webhook", outcome: "queued", status: 200, topic, shop, bytes_in: body.length }));
    env.EDGE_COUNTS?.writeDataPoint({
      blobs: ["accepted", "inline", topic, shop, "intake", "stripped"],
      doubles: [1, body.length, 0],
      indexes: [shop],
    });
    return new Response(`{"status":"queued","webhook_id":"${h.get("x-shopify-webhook-id")}"}`, {
      headers: { "content-type": "application/json" },
    });
  },
};
