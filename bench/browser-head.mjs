// Head-only training speed of the built page in headless Chromium: feature extraction and head
// epochs timed by the page itself, on the CPU (wasm) path and on WebGPU (SwiftShader here).
// A benchmark: it prints numbers and asserts nothing.
//
//   node bench/browser-head.mjs [--images 100] [--epochs 20] [--size 256] [--backend cpu|webgpu|both]
//
// Needs what scripts/test.sh builds: www/dist with the weights, and /usr/bin/chromium.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { colourPicture } from '../tests/e2e/support/png.mjs';
import { serveStatic } from '../tests/e2e/support/server.mjs';
import { WEBGPU_FLAGS, launchChromium } from '../tests/e2e/support/chromium.mjs';
import { openAdvanced } from '../tests/e2e/support/page.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opts } = parseArgs({
  options: {
    images: { type: 'string', default: '100' },
    epochs: { type: 'string', default: '20' },
    size: { type: 'string', default: '256' },
    backend: { type: 'string', default: 'both' },
  },
});
const BACKENDS = { cpu: [], webgpu: WEBGPU_FLAGS };

const server = await serveStatic(join(ROOT, 'www', 'dist'));
const work = await mkdtemp(join(tmpdir(), 'webtune-bench-'));
try {
  const images = Number(opts.images);
  for (const [index, label] of ['blue', 'red'].entries()) {
    await mkdir(join(work, label));
    for (let i = index; i < images; i += 2) {
      await writeFile(join(work, label, `${label}-${i}.png`), colourPicture(label, i + 1, Number(opts.size)));
    }
  }
  for (const backend of opts.backend === 'both' ? ['cpu', 'webgpu'] : [opts.backend]) {
    const browser = await launchChromium(BACKENDS[backend]);
    try {
      const page = await browser.newPage();
      const byTestId = (id) => page.locator(`[data-testid="${id}"]`);
      await page.goto(`${server.url}?backend=${backend}`);
      await page.waitForSelector('[data-testid="backend-label"][data-status="ready"]', { timeout: 600_000 });
      const loadStart = Date.now();
      await byTestId('folder-input').setInputFiles(work);
      await page.waitForFunction((n) => {
        const counts = [...document.querySelectorAll('[data-testid="class-row"] [data-count]')].map((c) => Number(c.getAttribute('data-count')));
        return document.querySelector('[data-testid="add-status"]')?.getAttribute('data-adding') === '0' && counts.reduce((a, b) => a + b, 0) === n;
      }, images, { timeout: 600_000 });
      const loadMs = Date.now() - loadStart;
      await openAdvanced(page);
      await byTestId('epochs').fill(opts.epochs);
      // Head only: with enough pictures the page would go on to fine-tune (phase 2).
      await byTestId('fine-tune-blocks').fill('0');
      await byTestId('train-button').click();
      await page.waitForSelector('[data-testid="train-status"]:is([data-phase="done"], [data-phase="failed"])', { timeout: 3_600_000 });
      const featureMs = Number(await byTestId('feature-time').getAttribute('data-ms'));
      const trainMs = Number(await byTestId('epoch-time').getAttribute('data-ms'));
      const metrics = await byTestId('metrics').evaluate((el) => ({ ...el.dataset }));
      const epochs = Number(opts.epochs);
      console.log(
        `${backend}: ${images} images at ${opts.size}px -> 224px | add (decode+crop) ${(loadMs / 1000).toFixed(1)} s | ` +
          `feature extraction ${(featureMs / 1000).toFixed(1)} s (${(featureMs / images).toFixed(0)} ms/image) | ` +
          `head ${epochs} epochs ${(trainMs / 1000).toFixed(2)} s (${(trainMs / epochs).toFixed(0)} ms/epoch) | val acc ${metrics.valAccuracy}`,
      );
    } finally {
      await browser.close();
    }
  }
} finally {
  await server.close();
  await rm(work, { recursive: true, force: true });
}
