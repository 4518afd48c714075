// The runtime's floor for `cargo xtask bench edge`: a worker that reads the request body whole
// and answers 200 with a small JSON body, nothing else. What a worker spends above this is its
// own work (HMAC, strip, envelope, enqueue, count); below it is workerd's and the client's.

export default {
  async fetch(request) {
    await request.arrayBuffer();
    return new Response('{"status":"queued"}', { headers: { "content-type": "application/json" } });
  },
};
