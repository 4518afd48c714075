// `cargo xtask bench edge-parse`: what one pass over an order body costs in wasm, in V8 (the
// engine workerd runs), beside the JavaScript reference's own parse measured in the same run.
// Usage: node bench/wasm-parse/run.mjs <wasm-bindgen nodejs output dir> <body.json>...
//
// Each pass goes through wasm-bindgen's glue, so the body is copied into the module's memory on
// every call, as the edge worker's is. Rounds alternate the passes; figures are medians.

import { readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { createRequire } from "node:module";

const [pkg, ...bodies] = process.argv.slice(2);
const wasm = createRequire(import.meta.url)(join(pkg, "wholesail_wasm_parse.js"));
const ROUNDS = 21;
const decoder = new TextDecoder();

const passes = {
  "glue only (body copied into wasm)": (b) => wasm.glue_only(b),
  "serde_json validating parse (IgnoredAny)": (b) => wasm.serde_validate(b),
  "simd-json tape (simd128)": (b) => wasm.simd_json_tape(b),
  "the edge's stripper (orders/create allowlist)": (b) => wasm.strip(b),
  "reference: JSON.parse of the decoded body (the JavaScript worker's parse)": (b) =>
    JSON.parse(decoder.decode(b)) && b.length,
};

for (const path of bodies) {
  const body = readFileSync(path);
  const calls = Math.max(5, Math.round(20e6 / body.length));
  const times = Object.fromEntries(Object.keys(passes).map((k) => [k, []]));
  for (const [name, pass] of Object.entries(passes)) {
    // Every call gets a copy: simd-json parses in place and would rewrite an escaped body.
    const out = pass(new Uint8Array(body));
    if (out < 0) throw new Error(`${name} rejected ${path}`);
    for (let i = 0; i < calls; i++) pass(new Uint8Array(body)); // warm-up
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, pass] of Object.entries(passes)) {
      const copies = Array.from({ length: calls }, () => new Uint8Array(body));
      const t = performance.now();
      for (const c of copies) pass(c);
      times[name].push((performance.now() - t) / calls);
    }
  }
  const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
  const reference = median(times[Object.keys(passes).at(-1)]);
  console.log(`\n${basename(path)}: ${body.length} bytes, median of ${ROUNDS} rounds of ${calls} calls, Node ${process.versions.node} (V8 ${process.versions.v8})\n`);
  console.log("| pass | ms per body | MB/s | ÷ JSON.parse |");
  console.log("|---|---:|---:|---:|");
  for (const name of Object.keys(passes)) {
    const ms = median(times[name]);
    console.log(`| ${name} | ${ms.toFixed(3)} | ${(body.length / 1e3 / ms).toFixed(0)} | ${(ms / reference).toFixed(2)} |`);
  }
}
