// The README's screenshots come from scripts/screenshots.mjs; running it here (into a temporary
// folder) keeps it working as the page changes: every state it shows is reached, and each
// screenshot is a real PNG of the size the viewport had.
//
//   node --test tests/e2e/screenshots.test.mjs     (needs www/dist with the sample project)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { takeScreenshots } from '../../scripts/screenshots.mjs';

test('scripts/screenshots.mjs reaches every state it shows', { timeout: 20 * 60_000 }, async () => {
  const out = await mkdtemp(join(tmpdir(), 'webtune-screenshots-'));
  try {
    const files = await takeScreenshots(out, process.env.WEBTUNE_DIST);
    assert.deepEqual(files.map((f) => basename(f)), ['1-start.png', '2-classes.png', '3-training.png', '4-results.png', '5-labels.png', '6-why.png', '7-phone.png']);
    for (const file of files) {
      const png = await readFile(file);
      assert.equal(png.subarray(1, 4).toString(), 'PNG', file);
      const width = png.readUInt32BE(16);
      assert.equal(width, basename(file) === '7-phone.png' ? 390 : 1280, `${file} width`);
    }
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
