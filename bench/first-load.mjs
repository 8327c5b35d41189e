// What the page costs to open: the bytes its first visit downloads (each file raw and gzip -9, the
// way a host that compresses would send it) and the time until the engine is ready to train,
// on the first visit (nothing cached) and on later visits (the service worker's cache, the
// browser's compiled-wasm cache). Served from www/dist on 127.0.0.1, so network time is ~0: the
// times are what the machine spends (compiling the module, reading the weights).
//
//   cd www && npm run build && cd .. && node bench/first-load.mjs [--visits 3] [--backend cpu|webgpu]
//
// Prints Markdown. Needs /usr/bin/chromium.

import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { availableParallelism, cpus } from 'node:os';
import { serveStatic } from '../tests/e2e/support/server.mjs';
import { WEBGPU_FLAGS, launchChromium } from '../tests/e2e/support/chromium.mjs';
import { waitForEngine } from '../tests/e2e/support/page.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'www', 'dist');
const { values: opts } = parseArgs({ options: { visits: { type: 'string', default: '3' }, backend: { type: 'string', default: 'cpu' } } });
const visits = Number(opts.visits);
const backend = opts.backend;

const server = await serveStatic(DIST);
const browser = await launchChromium(backend === 'webgpu' ? WEBGPU_FLAGS : []);
const median = (values) => [...values].sort((a, b) => a - b)[values.length >> 1];
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  const fetched = new Map();
  page.on('response', (response) => {
    const path = new URL(response.url()).pathname;
    if (response.url().startsWith(server.url) && response.status() === 200) fetched.set(path, response.fromServiceWorker());
  });
  const open = async (reload) => {
    const started = Date.now();
    await (reload ? page.reload() : page.goto(`${server.url}?backend=${backend}`));
    await waitForEngine(page, backend);
    return Date.now() - started;
  };

  const first = await open(false);
  const firstFiles = [...fetched.keys()];
  // Later visits are served by the service worker once it has precached everything.
  await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 120_000 });
  const later = [];
  for (let i = 0; i < visits; i++) {
    fetched.clear();
    later.push(await open(true));
  }
  const fromWorker = [...fetched.values()].filter(Boolean).length;

  const rows = [];
  for (const path of firstFiles) {
    const file = join(DIST, path.endsWith('/') ? `${path}index.html` : path);
    const bytes = await readFile(file).catch(() => null);
    if (bytes) rows.push({ path, raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length });
  }
  rows.sort((a, b) => b.raw - a.raw);
  const mb = (n) => (n / 1e6).toFixed(2);
  const sum = (key) => rows.reduce((total, row) => total + row[key], 0);
  console.log(`Machine: ${availableParallelism()} logical CPUs, ${cpus()[0]?.model ?? '?'}; Chromium ${browser.version()} headless; backend ${backend}; page served from 127.0.0.1.`);
  console.log('');
  console.log('| file (first visit) | raw MB | gzip -9 MB |');
  console.log('|---|---|---|');
  for (const row of rows.filter((r) => r.raw > 100_000)) console.log(`| ${row.path} | ${mb(row.raw)} | ${mb(row.gzip)} |`);
  const small = rows.filter((r) => r.raw <= 100_000);
  console.log(`| ${small.length} smaller files | ${mb(small.reduce((t, r) => t + r.raw, 0))} | ${mb(small.reduce((t, r) => t + r.gzip, 0))} |`);
  console.log(`| **all** | **${mb(sum('raw'))}** | **${mb(sum('gzip'))}** |`);
  console.log('');
  console.log(`Ready to train: first visit ${(first / 1000).toFixed(2)} s; later visits (service worker, ${fromWorker} of ${fetched.size} responses from it on the last) ${later.map((ms) => (ms / 1000).toFixed(2)).join(', ')} s, median ${(median(later) / 1000).toFixed(2)} s.`);
} finally {
  await browser.close();
  await server.close();
}
