// Phase-2 step speed in headless Chromium on the CPU (wasm) path: the built bench page
// (www/dist/bench.html) times `timeFineTuneSteps` for unfreeze 2 and 4, with the frozen prefix
// cached and without, at 224 px on random data. The same work as the native
// `cargo run --release --example fine_tune_benchmark`. A benchmark: it prints numbers and asserts nothing.
//
//   node bench/browser-fine-tune.mjs [--batch 16] [--steps 3] [--unfreeze 2,4]
//
// Needs what scripts/test.sh builds: www/dist with the weights, and /usr/bin/chromium.

import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { serveStatic } from '../tests/e2e/support/server.mjs';
import { launchChromium } from '../tests/e2e/support/chromium.mjs';
import { runBenchPage } from './bench-page.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opts } = parseArgs({
  options: {
    batch: { type: 'string', default: '16' },
    steps: { type: 'string', default: '3' },
    unfreeze: { type: 'string', default: '2,4' },
  },
});
// No WebGPU flags: Chromium offers no adapter here, and the page is asked for the CPU anyway.

const server = await serveStatic(join(ROOT, 'www', 'dist'));
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  const query = new URLSearchParams({ backend: 'cpu', batch: opts.batch, steps: opts.steps, unfreeze: opts.unfreeze });
  const started = Date.now();
  const results = await runBenchPage(page, server, query);
  console.log(`browser ${results[0]?.backend ?? 'cpu'} (wasm) | 224 px | batch ${opts.batch} | median of ${opts.steps} steps after a warm-up | ${((Date.now() - started) / 1000).toFixed(0)} s in all`);
  console.log('| unfreeze | prefix | ms/step | images/s |');
  console.log('|---|---|---|---|');
  for (const r of results) {
    console.log(`| ${r.unfreeze} | ${r.cached ? 'cached' : 'uncached'} | ${r.medianMs.toFixed(0)} | ${r.imagesPerSecond.toFixed(1)} |`);
  }
  for (const unfreeze of new Set(results.map((r) => r.unfreeze))) {
    const [cached, uncached] = [true, false].map((c) => results.find((r) => r.unfreeze === unfreeze && r.cached === c));
    if (cached && uncached) console.log(`unfreeze ${unfreeze}: the cache makes a step ${(uncached.medianMs / cached.medianMs).toFixed(1)}x faster`);
  }
} finally {
  await browser.close();
  await server.close();
}
