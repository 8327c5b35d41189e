// Many pictures through the page (bench/page-scale.mjs, with fewer pictures than the benchmark's
// 5000): all counted, Stop still ends a run at once, nothing lost after a reload, no uncaught
// error. The numbers it prints (time, longest main-thread task, memory) are reported, not asserted.
//
//   cd www && npm run build -- --mode bench && cd .. && node --test tests/e2e/scale.test.mjs
//
// WEBTUNE_SCALE_COUNT sets how many pictures (default 400, in 20 classes: enough to see the
// costs that grow with the count while keeping CI short; bench/page-scale.mjs measures 5000).

import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pageScale } from '../../bench/page-scale.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DIST = resolve(process.env.WEBTUNE_DIST ?? join(ROOT, 'www/dist'));
const COUNT = Number(process.env.WEBTUNE_SCALE_COUNT ?? 400);

before(() => {
  assert.ok(existsSync(join(DIST, 'index.html')), `the built page is missing (${DIST}/index.html)`);
});

test(`${COUNT} pictures in 20 classes: all counted, Stop answers, all back after a reload`, { timeout: 30 * 60_000 }, async () => {
  // Through the folder button as Chromium's users add folders (showDirectoryPicker).
  const results = await pageScale({ dist: DIST, count: COUNT, classes: 20, size: 64, picker: true });
  assert.equal(results.count, COUNT);
  assert.ok(results.thumbnails < COUNT / 2, `thumbnails only for the pictures in view (${results.thumbnails} of ${COUNT})`);
});
