// Explaining in the page: after training on clean colour classes with one picture filed under
// the wrong class, "Check the labels" lists that picture among the top 3 suspects with its true
// colour suggested, and moving it there works; a try-it picture gets a Grad-CAM heatmap. On labels
// that say nothing (random), the many mistakes are listed the most confident first, 50 at a time.
//
//   cd www && npm run build -- --mode bench && cd .. && node --test tests/e2e/explain.test.mjs

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from './support/server.mjs';
import { colourPicture } from './support/png.mjs';
import { errorsOn, openAdvanced, waitForClassCounts, waitForEngine, withPage } from './support/page.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DIST = resolve(process.env.WEBTUNE_DIST ?? join(ROOT, 'www', 'dist'));
const COLOURS = ['blue', 'green', 'red'];
const PER_CLASS = 8;
/** A blue picture in the red folder. */
const MISLABELLED = 'red-extra.png';

let server;
let dir;

async function writeDataset() {
  const dataset = join(dir, 'pictures');
  let seed = 1;
  for (const colour of COLOURS) {
    await mkdir(join(dataset, colour), { recursive: true });
    for (let i = 0; i < PER_CLASS; i++) await writeFile(join(dataset, colour, `${colour}-${i}.png`), colourPicture(colour, seed++));
  }
  await writeFile(join(dataset, 'red', MISLABELLED), colourPicture('blue', 500));
  const tryIt = join(dir, 'try-green.png');
  await writeFile(tryIt, colourPicture('green', 900));
  return { dataset, tryIt };
}

describe('explaining the model and its data', () => {
  before(async () => {
    assert.ok(existsSync(join(DIST, 'index.html')), `the built page is missing (${DIST}): run \`npm run build\` in www/`);
    server = await serveStatic(DIST);
    dir = await mkdtemp(join(tmpdir(), 'webtune-explain-'));
  });
  after(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('a mislabelled picture is a top-3 suspect, and a try-it picture gets a heatmap', { timeout: 15 * 60_000 }, async () => {
    const { dataset, tryIt } = await writeDataset();
    await withPage('explain', [], async (page, byTestId) => {
      await page.goto(`${server.url}?backend=cpu`);
      await waitForEngine(page, 'cpu');
      await byTestId('folder-input').setInputFiles(dataset);
      await waitForClassCounts(page, { blue: PER_CLASS, green: PER_CLASS, red: PER_CLASS + 1 });
      await openAdvanced(page);
      await byTestId('epochs').fill('30');
      await byTestId('learning-rate').fill('0.01');
      await byTestId('train-button').click();
      await page.waitForSelector('[data-testid="train-status"]:is([data-phase="done"], [data-phase="failed"], [data-phase="stopped"])', {
        timeout: 10 * 60_000,
      });
      assert.equal(await byTestId('train-status').getAttribute('data-phase'), 'done', await errorsOn(page));

      // The label check.
      await byTestId('check-labels').click();
      await page.waitForSelector('[data-testid="suspects"]', { timeout: 120_000 }).catch(async (error) => {
        throw new Error(`no suspects shown: ${await byTestId('label-check-status').innerText()}; ${await errorsOn(page)}\n${error.message}`);
      });
      const suspects = await page.$$eval('[data-testid="suspect"]', (rows) =>
        rows.map((row) => ({ file: row.dataset.file, label: row.dataset.label, suggested: row.dataset.suggested })),
      );
      console.log(`# suspects: ${JSON.stringify(suspects)}`);
      const rank = suspects.findIndex((s) => s.file === MISLABELLED);
      assert.ok(rank >= 0 && rank < 3, `${MISLABELLED} must be in the top 3 suspects: ${JSON.stringify(suspects)}`);
      assert.deepEqual(suspects[rank], { file: MISLABELLED, label: 'red', suggested: 'blue' });
      assert.match(await byTestId('label-check-status').innerText(), /Checked 25 pictures with 5-fold cross-validation/);

      // A heatmap for a try-it picture: the overlay is drawn from a 7×7 map with a positive peak.
      await byTestId('predict-input').setInputFiles(tryIt);
      const prediction = page.locator('[data-testid="prediction"][data-file="try-green.png"]');
      await prediction.locator('[data-testid="heatmap-toggle"]').click({ timeout: 60_000 });
      const heatmap = prediction.locator('[data-testid="heatmap"]');
      await heatmap.waitFor({ timeout: 120_000 });
      assert.equal(await heatmap.getAttribute('data-map-width'), '7');
      assert.equal(await heatmap.getAttribute('data-map-height'), '7');
      assert.equal(await heatmap.getAttribute('data-label'), await prediction.getAttribute('data-top-label'));
      assert.ok(Number(await heatmap.getAttribute('data-peak')) > 0, 'the heatmap has a region that speaks for the class');
      const drawn = await heatmap.evaluate((canvas) => {
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let opaque = 0;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] === 255) opaque++;
        return { width: canvas.width, opaque };
      });
      assert.deepEqual(drawn, { width: 224, opaque: 224 * 224 });
      // Hidden and shown again without asking the engine twice.
      await prediction.locator('[data-testid="heatmap-toggle"]').click();
      assert.equal(await heatmap.isVisible(), false);

      // Moving the suspect to the suggested class.
      await page.locator(`[data-testid="suspect"][data-file="${MISLABELLED}"] [data-testid="suspect-move"]`).click();
      await waitForClassCounts(page, { blue: PER_CLASS + 1, green: PER_CLASS, red: PER_CLASS });
      assert.match(await byTestId('label-check-status').innerText(), /Moved red-extra\.png to blue/);
    });
  });

  test('many mistakes are listed the most confident first, 50 at a time', { timeout: 8 * 60_000 }, async () => {
    // Labels independent of the pictures: about three validation pictures in four are wrong.
    const dataset = join(dir, 'random-labels');
    const classes = ['c0', 'c1', 'c2', 'c3'];
    for (const label of classes) await mkdir(join(dataset, label), { recursive: true });
    for (let i = 0; i < 240; i++) {
      await writeFile(join(dataset, classes[i % 4], `p${i}.png`), colourPicture(COLOURS[(i * 7) % 3], 2000 + i));
    }
    await withPage('mistakes', [], async (page, byTestId) => {
      await page.goto(`${server.url}?backend=cpu`);
      await waitForEngine(page, 'cpu');
      await byTestId('folder-input').setInputFiles(dataset);
      await waitForClassCounts(page, Object.fromEntries(classes.map((label) => [label, 60])));
      await openAdvanced(page);
      await byTestId('epochs').fill('2');
      await byTestId('validation-percent').fill('50');
      await byTestId('fine-tune-blocks').fill('0');
      await byTestId('train-button').click();
      await page.waitForSelector('[data-testid="train-status"]:is([data-phase="done"], [data-phase="failed"])', { timeout: 300_000 });
      assert.equal(await byTestId('train-status').getAttribute('data-phase'), 'done', await errorsOn(page));

      const table = byTestId('eval-misclassified');
      const count = Number(await table.getAttribute('data-count'));
      assert.ok(count > 50, `random labels give many mistakes: ${count}`);
      const more = byTestId('more-misclassified');
      for (let shown = 50; ; shown += 50) {
        const probabilities = await page.$$eval('[data-testid="misclassified"]', (rows) => rows.map((row) => Number(row.dataset.probability)));
        assert.equal(probabilities.length, Math.min(count, shown));
        assert.equal(Number(await table.getAttribute('data-shown')), probabilities.length);
        assert.deepEqual(probabilities, [...probabilities].sort((a, b) => b - a), 'the most confident mistakes first');
        if (shown >= count) {
          assert.equal(await more.isHidden(), true, 'nothing left to show');
          break;
        }
        assert.equal(await more.innerText(), `Show ${Math.min(count - shown, 50)} more (${count - shown} not shown)`);
        await more.click();
      }
    });
  });
});
