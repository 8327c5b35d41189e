// The whole recipe through the real page (www/dist/index.html) in headless Chromium on the CPU
// (wasm) path: load a class folder, train the head (phase 1), fine-tune the last N backbone
// blocks (phase 2, unless N is 0), evaluate. Prints one JSON line to compare with the native
// `webtune train DATA_DIR --json` on the same data and seed:
//   {"headValAccuracy", "fineValAccuracy", "accuracy", "featureMs", "headMs", "cacheMs", "fineMs", "unfreeze", "epochsFine", ...}
// headValAccuracy is the kept phase-1 epoch's (early stopping keeps the best); fineValAccuracy
// the final evaluate() (null when N is 0, as natively), accuracy the final evaluate() either way.
// Progress goes to stderr. Settings not given keep the page's defaults, which are the CLI's:
// with no option at all this is the default recipe a user gets by pressing Train.
//
//   node bench/browser-recipe.mjs DATA_DIR [--unfreeze N] [--epochs-head N] [--epochs-fine N] [--views N] [--seed 42] [--no-flip] [--workers 1|2]
//
// --workers 1 keeps the engine on one core (the page's `?workers=1`); by default it takes a
// helper worker on a second core for phase 2 when the machine has one.
// Without --unfreeze the page's recommendation is used. Needs www/dist with the weights and /usr/bin/chromium.
// The page adds pictures in path order as the CLI does, so a seed gives both the same split: on
// bench/digits.py's 20 per class, --unfreeze 2 --epochs-fine 2 --views 1 gave the same head and
// fine-tuned accuracies (0.533, 0.367) and cache size here and natively.

import { readdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { serveStatic } from '../tests/e2e/support/server.mjs';
import { launchChromium } from '../tests/e2e/support/chromium.mjs';
import { openAdvanced } from '../tests/e2e/support/page.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    unfreeze: { type: 'string' },
    'epochs-head': { type: 'string' },
    'epochs-fine': { type: 'string' },
    views: { type: 'string' },
    seed: { type: 'string', default: '42' },
    'no-flip': { type: 'boolean', default: false },
    workers: { type: 'string', default: '2' },
  },
});
if (positionals.length !== 1) {
  console.error('usage: node bench/browser-recipe.mjs DATA_DIR [--unfreeze N] [--epochs-head N] [--epochs-fine N] [--views N] [--seed 42] [--no-flip] [--workers 1|2]');
  process.exit(2);
}
const dataDir = resolve(positionals[0]);
// No WebGPU flags: the CPU path, as the native build it is compared with.
const log = (line) => console.error(`[browser-recipe] ${line}`);

/** Files the page will read: those directly inside the class folders, minus what it skips as clutter. */
async function countFiles(dir) {
  let count = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    for (const file of await readdir(join(dir, entry.name), { withFileTypes: true })) {
      if (file.isFile() && !file.name.startsWith('.') && !['Thumbs.db', 'desktop.ini'].includes(file.name)) count++;
    }
  }
  return count;
}

const server = await serveStatic(join(ROOT, 'www', 'dist'));
const browser = await launchChromium();
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const byTestId = (id) => page.locator(`[data-testid="${id}"]`);
  await page.goto(`${server.url}?backend=cpu&workers=${opts.workers}`);
  await page.waitForSelector('[data-testid="backend-label"]:is([data-status="ready"], [data-status="failed"])', { timeout: 600_000 });
  if ((await byTestId('backend-label').getAttribute('data-status')) !== 'ready') throw new Error('the engine did not start');

  const files = await countFiles(dataDir);
  log(`adding ${files} files from ${dataDir}`);
  const addStart = Date.now();
  await byTestId('folder-input').setInputFiles(dataDir);
  await page.waitForFunction((n) => {
    const added = [...document.querySelectorAll('[data-testid="class-row"] [data-count]')].reduce((sum, c) => sum + Number(c.getAttribute('data-count')), 0);
    const refused = document.querySelectorAll('[data-testid="file-problem"]').length;
    return document.querySelector('[data-testid="add-status"]')?.getAttribute('data-adding') === '0' && added + refused >= n;
  }, files, { timeout: 0, polling: 500 });
  const refused = await page.locator('[data-testid="file-problem"]').count();
  log(`added in ${((Date.now() - addStart) / 1000).toFixed(1)} s${refused ? `; ${refused} files refused` : ''}`);

  await openAdvanced(page);
  const fill = async (id, value) => value !== undefined && (await byTestId(id).fill(value));
  await fill('epochs', opts['epochs-head']);
  await fill('seed', opts.seed);
  await fill('fine-tune-blocks', opts.unfreeze);
  await page.locator('#advanced > summary').click();
  await fill('fine-epochs', opts['epochs-fine']);
  await fill('views-per-image', opts.views);
  if (opts['no-flip']) await byTestId('horizontal-flip').setChecked(false);
  const unfreeze = Number(await byTestId('fine-tune-blocks').inputValue());
  log(`${await byTestId('recommendation').innerText()} Chosen: ${unfreeze}`);

  await byTestId('train-button').click();
  // Say what the page says while it works: each new status, and the progress every 15 s.
  let said = '';
  let progressAt = 0;
  for (;;) {
    const phase = await byTestId('train-status').getAttribute('data-phase');
    const status = await byTestId('train-status').innerText();
    if (status !== said) log((said = status));
    if (['done', 'stopped', 'failed'].includes(phase)) break;
    if (Date.now() - progressAt > 15_000 && ['features', 'caching'].includes(phase)) {
      progressAt = Date.now();
      log(await byTestId(phase === 'features' ? 'feature-progress-text' : 'cache-progress-text').innerText());
    }
    await page.waitForTimeout(1000);
  }
  const phase = await byTestId('train-status').getAttribute('data-phase');
  if (phase !== 'done') throw new Error(`training ended as "${phase}": ${await byTestId('train-status').innerText()}`);

  const ms = async (id) => ((await byTestId(id).count()) ? Number((await byTestId(id).getAttribute('data-ms')) || 0) : 0);
  const rows = await page.$$eval('[data-testid="epoch-row"]', (trs) => trs.map((tr) => ({ ...tr.dataset })));
  const headRows = rows.filter((r) => r.stage === 'head');
  const last = headRows.at(-1);
  const evaluation = byTestId('eval-overall');
  const accuracy = (await evaluation.count()) ? Number(await evaluation.getAttribute('data-accuracy')) : null;
  const kept = last?.bestValAccuracy || last?.valAccuracy;
  const result = {
    headValAccuracy: kept ? Number(kept) : null,
    fineValAccuracy: unfreeze > 0 ? accuracy : null,
    accuracy,
    accuracyInterval: (await evaluation.count())
      ? [Number(await evaluation.getAttribute('data-accuracy-low')), Number(await evaluation.getAttribute('data-accuracy-high'))]
      : null,
    featureMs: await ms('feature-time'),
    headMs: await ms('epoch-time'),
    cacheMs: await ms('cache-time'),
    fineMs: await ms('fine-time'),
    unfreeze,
    epochsFine: rows.length - headRows.length,
    epochsHead: headRows.length,
    images: rows.length ? await page.$$eval('[data-testid="class-row"] [data-count]', (c) => c.reduce((sum, e) => sum + Number(e.getAttribute('data-count')), 0)) : 0,
    cacheBytes: Number((await byTestId('cache-progress-text').getAttribute('data-bytes')) || 0),
    stoppedEarly: await byTestId('early-stop').isVisible(),
    seed: Number(await byTestId('seed').inputValue()),
    views: Number(await byTestId('views-per-image').inputValue()),
    workers: Number(await byTestId('backend-label').getAttribute('data-workers')),
    helperAnswers: Number(await byTestId('train-status').getAttribute('data-helper-answers')),
  };
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
  await server.close();
}
