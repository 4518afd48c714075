// The JavaScript reference for `cargo xtask bench edge`: a minimal Cloudflare Worker doing what
// the Rust edge worker does on `POST /webhooks` — HMAC check with crypto.subtle (current and
// previous secret), JSON.parse, strip to the orders allowlist, envelope, queue send as text
// (R2 when over the message limit), one JSON log line, one count (a data point in EDGE_COUNTS
// when bound, else a JSON count line, as the Rust worker's `analytics` does), 200 — with the
// same bindings (wrangler.toml). Like the Rust worker it hashes the body with SHA-256 for the
// envelope's `body_sha256`. It has no consumer: the benchmark measures the acknowledging side.

const MAX_INLINE_MESSAGE_BYTES = 120_000;

const ADDRESS = { country_code: 1, province_code: 1, zip: 1, city: 1 };
const LINE_ITEM = { sku: 1, quantity: 1, current_quantity: 1, price: 1, total_discount: 1 };
const ORDER = {
  name: 1, order_number: 1, email: 1, created_at: 1, processed_at: 1, cancelled_at: 1,
  cancel_reason: 1, closed_at: 1, financial_status: 1, fulfillment_status: 1, currency: 1,
  total_price: 1, subtotal_price: 1, total_tax: 1, total_discounts: 1, taxes_included: 1,
  tags: 1, po_number: 1, source_name: 1, test: 1,
  customer: { email: 1 }, company: {}, shipping_address: ADDRESS,
  shipping_lines: { code: 1, price: 1 }, line_items: LINE_ITEM,
};
const ORDER_TOPICS = ["create", "updated", "paid", "cancelled", "fulfilled", "partially_fulfilled", "delete"];
const SPECS = Object.fromEntries(ORDER_TOPICS.map((t) => [`orders/${t}`, ORDER]));

function alwaysKept(key, top) {
  if (key === "admin_graphql_api_id" || key === "updated_at") return top;
  return key === "id" || key.endsWith("_id");
}

function filter(value, spec, top) {
  if (Array.isArray(value)) return value.map((v) => filter(v, spec, false));
  if (value === null || typeof value !== "object") return value;
  const out = {};
  for (const key in value) {
    const field = spec[key];
    if (field === 1 || (field === undefined && alwaysKept(key, top))) out[key] = value[key];
    else if (field !== undefined) out[key] = filter(value[key], field, false);
  }
  return out;
}

const keyCache = new Map();
function hmacKey(secret) {
  let key = keyCache.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
    keyCache.set(secret, key);
  }
  return key;
}

function fromBase64(s) {
  try {
    return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
}

export async function verify(body, hmacHeader, secrets) {
  const digest = fromBase64(hmacHeader ?? "");
  if (!digest || digest.length !== 32) return false;
  for (const secret of secrets) {
    if (secret && (await crypto.subtle.verify("HMAC", await hmacKey(secret), digest, body))) return true;
  }
  return false;
}

export const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, "0")).join("");

// One count per outcome, the Rust worker's shape (edge/src/count.rs): a data point when the
// dataset is bound, else a log line.
export function count(env, { outcome, reason, topic = "", shop = "", payload = "", bytes = 0, webhookId = "" }) {
  if (!env.EDGE_COUNTS) {
    console.log(JSON.stringify({
      level: "info", event: "count", stage: "intake", outcome, reason, topic, shop, payload, bytes,
      attempts: 0, webhook_id: webhookId,
    }));
    return;
  }
  env.EDGE_COUNTS.writeDataPoint({
    blobs: [outcome, reason, topic, shop, "intake", payload],
    doubles: [1, bytes, 0],
    indexes: shop && shop.length <= 96 ? [shop] : [],
  });
}

const json = (status, value) =>
  new Response(JSON.stringify(value), { status, headers: { "content-type": "application/json" } });

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (request.method !== "POST" || url.pathname !== "/webhooks") return json(404, { error: "not found" });
    const receivedAt = Date.now();
    const limit = Number(env.MAX_BODY_BYTES);
    if (Number(request.headers.get("content-length") ?? 0) > limit) return json(413, { error: "too large" });
    const body = new Uint8Array(await request.arrayBuffer());
    if (body.length > limit) return json(413, { error: "too large" });
    const h = request.headers;
    if (!(await verify(body, h.get("x-shopify-hmac-sha256"), [env.SHOPIFY_SECRET, env.SHOPIFY_PREVIOUS_SECRET]))) {
      count(env, { outcome: "refused", reason: "bad_hmac", bytes: body.length });
      return json(401, { error: "HMAC does not match" });
    }
    const meta = {
      webhook_id: h.get("x-shopify-webhook-id"),
      event_id: h.get("x-shopify-event-id"),
      topic: h.get("x-shopify-topic"),
      shop: (h.get("x-shopify-shop-domain") ?? "").toLowerCase(),
      api_version: h.get("x-shopify-api-version"),
      triggered_at: h.get("x-shopify-triggered-at"),
      name: h.get("x-shopify-name"),
    };
    if (!meta.webhook_id || !meta.topic || !meta.shop.endsWith(".myshopify.com")) return json(400, { error: "bad headers" });
    const allow = (env.SHOP_ALLOWLIST ?? "").split(/[\s,]+/).filter(Boolean);
    if (allow.length && !allow.includes(meta.shop)) return json(403, { error: "shop not allowed" });
    const bodySha256 = hex(await crypto.subtle.digest("SHA-256", body));
    let payload;
    let kind = "stripped";
    try {
      const parsed = JSON.parse(new TextDecoder().decode(body));
      const spec = SPECS[meta.topic];
      payload = { json: { stripping: spec ? "allowlist" : "unknown_topic", body: spec ? filter(parsed, spec, true) : parsed } };
      if (!spec) kind = "unknown_topic";
    } catch (e) {
      kind = "malformed";
      payload = { malformed: { reason: String(e), body_base64: btoa(String.fromCharCode(...body)) } };
    }
    const envelope = JSON.stringify({ meta, received_at_ms: receivedAt, original_bytes: body.length, body_sha256: bodySha256, payload });
    let message = `{"inline":${envelope}}`;
    let outcome = "queued";
    if (new TextEncoder().encode(message).length > MAX_INLINE_MESSAGE_BYTES) {
      const key = `oversized/${meta.shop}/${meta.webhook_id}/${receivedAt}.json`;
      await env.PAYLOADS.put(key, envelope);
      message = JSON.stringify({ stored: { key, webhook_id: meta.webhook_id, bytes: envelope.length } });
      outcome = "stored_r2";
    }
    try {
      await env.WEBHOOKS.send(message, { contentType: "text" });
    } catch (e) {
      console.error(JSON.stringify({ level: "error", event: "webhook", outcome: "enqueue_failed", status: 503 }));
      count(env, { outcome: "failed", reason: "enqueue_failed", topic: meta.topic, shop: meta.shop, payload: kind, bytes: body.length, webhookId: meta.webhook_id });
      return json(503, { error: "could not store the webhook; retry later" });
    }
    console.log(JSON.stringify({
      level: "info", event: "webhook", outcome, status: 200, topic: meta.topic, shop: meta.shop,
      webhook_id: meta.webhook_id, bytes_in: body.length, bytes_out: envelope.length,
    }));
    count(env, {
      outcome: "accepted", reason: outcome === "queued" ? "inline" : "r2", topic: meta.topic, shop: meta.shop,
      payload: kind, bytes: body.length, webhookId: meta.webhook_id,
    });
    return json(200, { status: "queued", webhook_id: meta.webhook_id });
  },
};
