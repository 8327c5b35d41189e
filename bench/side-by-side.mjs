// webtune's CPU path against TF.js 4.22 in ONE headless Chromium, rounds alternating between
// them so that load from elsewhere on the machine hits both alike; prints medians over rounds
// (each round's own median of --steps timed steps after a warm-up) and ratios as Markdown.
//
//   webtune init-weights --backbone mobilenet_v2 DIR/mobilenet_v2.safetensors
//   webtune init-weights --backbone efficientnet_lite0 DIR/efficientnet_lite0.safetensors
//   node bench/side-by-side.mjs DIR [--rounds 5] [--steps 3] [--threads 2] [--train-rounds 2]
//        [--train-backends webgl,webgpu,wasm] [--skip-train]
//
// Workloads: the MobileNetV2 (α = 1.0) backbone forward at 224 px, batch 1 and 8 (TF.js: built
// from tf.layers with random weights; webtune: `mobilenet_v2` and its default backbone
// `efficientnet_lite0`, both with BatchNorm as is and folded), and a phase-2 training step at
// batch 8 of the last 2 units (the last block and the final 1×1 convolution) on a cached prefix,
// against every TF.js backend that can train convolutions here (its wasm backend has no
// Conv2DBackpropFilter kernel; WebGL and WebGPU run on SwiftShader on a machine without a GPU).
// Then the share of one thread's wasm simd128 peak that EfficientNet-Lite0's main convolution
// shapes reach (the peak from a register-only micro-benchmark, src/train/kernel_timing.rs).
// Needs www/dist built with the bench page (npm run build) and /usr/bin/chromium.

import { cpus, availableParallelism, loadavg } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { serveStatic } from '../tests/e2e/support/server.mjs';
import { WEBGPU_FLAGS, launchChromium } from '../tests/e2e/support/chromium.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '5' },
    steps: { type: 'string', default: '3' },
    threads: { type: 'string', default: String(availableParallelism()) },
    'train-rounds': { type: 'string', default: '2' },
    'train-backends': { type: 'string', default: 'webgl,webgpu,wasm' },
    'skip-train': { type: 'boolean', default: false },
  },
});
if (positionals.length !== 1) {
  console.error('usage: node bench/side-by-side.mjs WEIGHTS_DIR [--rounds 5] [--steps 3] [--threads N] [--train-rounds 2] [--skip-train]');
  process.exit(2);
}
const weightsDir = resolve(positionals[0]);
const BACKBONES = ['mobilenet_v2', 'efficientnet_lite0'];
for (const name of BACKBONES) {
  if (!existsSync(join(weightsDir, `${name}.safetensors`))) {
    console.error(`${weightsDir}/${name}.safetensors is missing: \`webtune init-weights --backbone ${name} ${weightsDir}/${name}.safetensors\``);
    process.exit(2);
  }
}
const [rounds, steps, threads, trainRounds] = [opts.rounds, opts.steps, opts.threads, opts['train-rounds']].map(Number);
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

const wasmDist = join(ROOT, 'www', 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist');
// The TF.js wasm binaries from the page's own origin (a bench-only route; no CDN).
// TF.js's threaded wasm backend starts each of its threads with importScripts() of a blob: URL,
// which the page's CSP (www/headers.json: script-src 'self') refuses; this run alone allows it.
const csp = JSON.parse(readFileSync(join(ROOT, 'www', 'headers.json'), 'utf8'))['Content-Security-Policy'];
const server = await serveStatic(
  join(ROOT, 'www', 'dist'),
  { '/bench-weights/': weightsDir, '/tfjs-wasm/': wasmDist },
  { 'Content-Security-Policy': csp.replace("script-src 'self'", "script-src 'self' blob:") },
);
// WebGPU on SwiftShader, and WebGL on SwiftShader for TF.js's WebGL backend.
const browser = await launchChromium([...WEBGPU_FLAGS, '--use-angle=swiftshader', '--enable-unsafe-swiftshader']);
const load = [loadavg()[0]];
const started = Date.now();
try {
  const page = await browser.newPage();
  page.on('console', (m) => m.type() === 'error' && console.error(`[page] ${m.text()}`));
  await page.goto(`${server.url}bench.html?mode=side-by-side`);
  await page.waitForFunction(() => document.body.dataset.ready === '1');
  const env = await page.evaluate(() => ({ isolated: crossOriginIsolated, cores: navigator.hardwareConcurrency, ua: navigator.userAgent }));
  const call = async (worker, request) => {
    const reply = await page.evaluate(([w, r]) => window.__sideBySide.call(w, r), [worker, request]);
    if (!reply.ok) throw new Error(`${worker} ${JSON.stringify(request)}: ${reply.error}`);
    return reply;
  };
  const tryCall = (worker, request) => call(worker, request).catch((error) => ({ ok: false, error: error.message }));

  const wasm = `tfjs:wasm:${threads}`;
  const wasmInfo = await call(wasm, { op: 'init', backend: 'wasm', threads, wasmPaths: `${server.url}tfjs-wasm/` });
  const loads = {};
  for (const backbone of BACKBONES) {
    loads[backbone] = await call('webtune', { op: 'load', backbone, weightsUrl: `${server.url}bench-weights/${backbone}.safetensors` });
  }

  // Inference: each round runs every engine once per batch size, in turn.
  const engines = [
    { label: `TF.js wasm (${wasmInfo.threads} threads) MobileNetV2`, run: (batch) => call(wasm, { op: 'forward', batch, steps }).then((r) => median(r.times)) },
    ...BACKBONES.flatMap((backbone) =>
      [false, true].map((folded) => ({
        label: `webtune cpu ${backbone}${folded ? ', BN folded' : ''}`,
        run: (batch) => call('webtune', { op: 'forward', backbone, batch, steps, folded }).then((r) => r.medianMs),
      })),
    ),
  ];
  const forward = {};
  for (let round = 0; round < rounds; round++) {
    for (const batch of [1, 8]) {
      for (const engine of engines) {
        ((forward[batch] ??= {})[engine.label] ??= []).push(await engine.run(batch));
      }
    }
    process.stderr.write(`inference round ${round + 1}/${rounds} done (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
  }
  load.push(loadavg()[0]);

  // The wasm simd128 peak of one thread, and how close the main convolution shapes come to it.
  const kernels = await call('webtune', { op: 'kernels', batch: 8, steps });

  // Phase 2: a training step of the last 2 units at batch 8 on a cached prefix.
  const train = {};
  const trainNotes = [];
  if (!opts['skip-train']) {
    const gpu = [];
    for (const backend of opts['train-backends'].split(',')) {
      const worker = backend === 'wasm' ? wasm : `tfjs:${backend}:0`;
      const info = backend === 'wasm' ? wasmInfo : await tryCall(worker, { op: 'init', backend, threads: 0, wasmPaths: '' });
      if (!info.ok) {
        trainNotes.push(`TF.js ${backend}: could not start (${info.error})`);
        continue;
      }
      // One try first: the wasm backend refuses, and a GPU backend compiles its shaders here.
      const first = await tryCall(worker, { op: 'phase2', unfreeze: 2, batch: 8, steps: 1 });
      if (!first.ok) trainNotes.push(`TF.js ${backend} (${info.info}): cannot train: ${first.error}`);
      else gpu.push({ label: `TF.js ${backend} MobileNetV2 (${info.info})`, run: () => call(worker, { op: 'phase2', unfreeze: 2, batch: 8, steps: 2 }).then((r) => median(r.times)) });
    }
    const trainEngines = [
      ...gpu,
      ...BACKBONES.map((backbone) => ({
        label: `webtune cpu ${backbone}`,
        run: () => call('webtune', { op: 'phase2', backbone, unfreeze: 2, batch: 8, steps }).then((r) => r.medianMs),
      })),
    ];
    for (let round = 0; round < trainRounds; round++) {
      for (const engine of trainEngines) (train[engine.label] ??= []).push(await engine.run());
      process.stderr.write(`training round ${round + 1}/${trainRounds} done (${((Date.now() - started) / 1000).toFixed(0)} s)\n`);
    }
    load.push(loadavg()[0]);
  }

  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  const version = browser.version();
  console.log(`Machine: ${availableParallelism()} logical CPUs (nproc), ${cpu}; Chromium ${version} headless, crossOriginIsolated ${env.isolated}, hardwareConcurrency ${env.cores}.`);
  console.log(`Load average (1 min) at start / after inference / after training: ${load.map((l) => l.toFixed(2)).join(' / ')}.`);
  console.log(`${rounds} alternating inference rounds, ${trainRounds} training rounds; each cell: median over rounds of the round's median of ${steps} timed steps (TF.js training: 2) after a warm-up.`);
  console.log(`TF.js: ${wasmInfo.info}, wasm backend with ${wasmInfo.threads} threads (setThreadsCount). webtune: burn-flex in wasm (simd128, one thread).`);
  console.log(`webtune load (import + fold): ${BACKBONES.map((b) => `${b} ${loads[b].loadMs.toFixed(0)} ms (fold ${loads[b].foldMs.toFixed(0)} ms)`).join(', ')}.`);
  console.log('');
  console.log('| workload | engine | median ms | images/s | × TF.js wasm time |');
  console.log('|---|---|---|---|---|');
  for (const batch of [1, 8]) {
    const base = median(forward[batch][engines[0].label]);
    for (const engine of engines) {
      const ms = median(forward[batch][engine.label]);
      console.log(`| forward 224 px, batch ${batch} | ${engine.label} | ${ms.toFixed(0)} | ${((1000 * batch) / ms).toFixed(1)} | ${(ms / base).toFixed(2)} |`);
    }
  }
  const trainLabels = Object.keys(train);
  const trainBase = trainLabels.length ? Math.min(...trainLabels.filter((l) => l.startsWith('TF.js')).map((l) => median(train[l]))) : NaN;
  for (const label of trainLabels) {
    const ms = median(train[label]);
    const ratio = Number.isFinite(trainBase) ? `${(ms / trainBase).toFixed(2)} (vs fastest TF.js)` : '–';
    console.log(`| phase-2 step, last 2 units, batch 8, cached prefix | ${label} | ${ms.toFixed(0)} | ${(8000 / ms).toFixed(1)} | ${ratio} |`);
  }
  for (const note of trainNotes) console.log(`\n- ${note}`);
  console.log('');
  console.log(`One thread's wasm simd128 peak: ${kernels.peakGflops.toFixed(1)} GFLOP/s (f32x4 multiplies and adds on 12 independent registers, nothing from memory, best of 3; src/train/kernel_timing.rs).`);
  console.log('');
  console.log('| EfficientNet-Lite0 convolution (cpu, wasm) | kernel | batch | median ms | GFLOP/s | share of the simd128 peak |');
  console.log('|---|---|---|---|---|---|');
  for (const shape of kernels.shapes) {
    console.log(`| ${shape.name} | ${shape.kernel === 'burn' ? 'burn-flex' : 'webtune'} | ${shape.batch} | ${shape.medianMs.toFixed(2)} | ${shape.gflops.toFixed(1)} | ${((100 * shape.gflops) / kernels.peakGflops).toFixed(0)} % |`);
  }
  console.log(`\n${((Date.now() - started) / 1000).toFixed(0)} s in all.`);
} finally {
  await browser.close();
  await server.close();
}
