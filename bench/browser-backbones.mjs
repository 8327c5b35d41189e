// Per-backbone numbers in headless Chromium on the CPU (wasm) path: the built bench page
// (www/dist/bench.html?mode=backbones) builds each backbone from its weights file with
// `Trainer.create` (the import time), reads its parameter count and times a forward pass at
// 224 px on random data. The same work as the native `cargo run --release --example
// backbone_benchmark`, which writes the weight files. A benchmark: it prints numbers and asserts nothing.
//
//   cargo run --release --example backbone_benchmark -- --write-weights /tmp/bench-weights
//   node bench/browser-backbones.mjs /tmp/bench-weights [--batch 1] [--steps 3]
//        [--backbones efficientnet_lite0,mobilenet_v2,resnet18,resnet50]
//
// Needs what scripts/test.sh builds (www/dist) and /usr/bin/chromium.

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { serveStatic } from '../tests/e2e/support/server.mjs';
import { launchChromium } from '../tests/e2e/support/chromium.mjs';
import { runBenchPage } from './bench-page.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    batch: { type: 'string', default: '1' },
    steps: { type: 'string', default: '3' },
    backbones: { type: 'string', default: 'efficientnet_lite0,mobilenet_v2,resnet18,resnet50' },
  },
});
if (positionals.length !== 1) {
  console.error('usage: node bench/browser-backbones.mjs WEIGHTS_DIR [--batch 1] [--steps 3] [--backbones a,b,…]');
  process.exit(2);
}
const weightsDir = resolve(positionals[0]);
const backbones = opts.backbones.split(',');
for (const name of backbones) {
  const file = join(weightsDir, `${name}.safetensors`);
  if (!existsSync(file)) {
    console.error(`${file} is missing: write it with \`cargo run --release --example backbone_benchmark -- --write-weights ${positionals[0]}\``);
    process.exit(2);
  }
}

const server = await serveStatic(join(ROOT, 'www', 'dist'), { '/bench-weights/': weightsDir });
// No WebGPU flags: Chromium offers no adapter here, and the page is asked for the CPU anyway.
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  const query = new URLSearchParams({
    mode: 'backbones',
    backend: 'cpu',
    backbones: backbones.join(','),
    weights: '/bench-weights/',
    batch: opts.batch,
    steps: opts.steps,
  });
  const started = Date.now();
  const results = await runBenchPage(page, server, query);
  console.log(`browser ${results[0]?.backend ?? 'cpu'} (wasm) | 224 px | batch ${opts.batch} | median of ${opts.steps} forwards after a warm-up | ${((Date.now() - started) / 1000).toFixed(0)} s in all`);
  console.log('| backbone | file MB | parameters | import ms | forward ms | images/s |');
  console.log('|---|---|---|---|---|---|');
  for (const r of results) {
    const imagesPerSecond = (1000 * r.batch) / r.forwardMs;
    console.log(
      `| ${r.backbone} | ${(r.fileBytes / 1e6).toFixed(1)} | ${r.parameters} | ${r.importMs.toFixed(0)} | ${r.forwardMs.toFixed(0)} | ${imagesPerSecond.toFixed(1)} |`,
    );
  }
} finally {
  await browser.close();
  await server.close();
}
