// Browser tests of the class cards (www/src/views/class-cards.ts) in headless Chromium, on the
// built page (www/dist): add a class by name, rename it (by keyboard; a refused name says why),
// merge, delete with a confirmation, move and delete single pictures, drop files onto a card, and
// a reload keeps all of it. A rename after training keeps the model (its download names the new
// class) and the next run computes no feature again. A class of 2000 pictures keeps a bounded
// number of <img> elements however it is scrolled.
//
//   cd www && npm run build -- --mode bench && cd .. && node --test tests/e2e/classes.test.mjs
//
// Environment: WEBTUNE_CHROMIUM (default /usr/bin/chromium), WEBTUNE_DIST (default www/dist),
// WEBTUNE_SCREENSHOT (PNG path: the cards at a phone's width).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM } from './support/chromium.mjs';
import { colourPicture, encodePng } from './support/png.mjs';
import { parseSafetensors } from './support/safetensors.mjs';
import { serveStatic } from './support/server.mjs';
import { errorsOn, makeDataset, openAdvanced, waitForClassCounts, waitForEngine, withPage } from './support/page.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DIST = resolve(process.env.WEBTUNE_DIST ?? join(ROOT, 'www', 'dist'));

let server;
let workDir;

const card = (page, label) => page.locator(`[data-testid="class-row"][data-label="${label}"]`);

/**
 * The paths (titles) of a small card's thumbnails, once it shows one per picture: the counts are
 * written at once, the thumbnails in the animation frame after.
 */
async function thumbPaths(page, label) {
  await page.waitForFunction(
    (label) => {
      const row = document.querySelector(`[data-testid="class-row"][data-label="${label}"]`);
      const count = Number(row?.querySelector('[data-count]')?.getAttribute('data-count'));
      return row !== null && row.querySelectorAll('[data-testid="thumb"]').length === count;
    },
    label,
    { timeout: 30_000 },
  );
  return card(page, label)
    .locator('[data-testid="thumb"]')
    .evaluateAll((cells) => cells.map((cell) => cell.getAttribute('title')).sort());
}

/**
 * Waits until every thumbnail image of the card has loaded (object URLs work under the CSP), each
 * from the page's scaled copy (192 px high), not the picture's own file (64 px here).
 */
async function waitForThumbnails(page, label, count) {
  await page.waitForFunction(
    ({ label, count }) => {
      const images = [...document.querySelectorAll(`[data-testid="class-row"][data-label="${label}"] img`)];
      return images.length === count && images.every((img) => img.complete && img.naturalWidth > 0);
    },
    { label, count },
    { timeout: 30_000 },
  );
  const heights = await card(page, label)
    .locator('img')
    .evaluateAll((images) => images.map((img) => img.naturalHeight));
  assert.deepEqual(heights, new Array(count).fill(192), 'thumbnails are the scaled copies');
}

async function renameByKeyboard(page, from, to) {
  await card(page, from).locator('[data-testid="rename-class"]').focus();
  await page.keyboard.press('Enter');
  const input = card(page, from).locator('[data-testid="rename-input"]');
  assert.equal(await input.evaluate((el) => el === document.activeElement), true, 'the name field takes the focus');
  await input.fill(to);
  await page.keyboard.press('Enter');
}

describe('class cards in headless Chromium', () => {
  before(async () => {
    assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}`);
    assert.ok(existsSync(join(DIST, 'index.html')), `the built page is missing (${DIST}/index.html): run \`npm run build\` in www/`);
    server = await serveStatic(DIST);
    workDir = await mkdtemp(join(tmpdir(), 'webtune-classes-'));
  });

  after(async () => {
    await server?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test('add, rename, merge, delete, move and delete pictures, drop onto a card; a reload keeps it', { timeout: 6 * 60_000 }, async () => {
    const { dataset } = await makeDataset(await mkdtemp(join(workDir, 'edit-')), 3);
    await withPage('cards', [], async (page, byTestId) => {
      await page.goto(server.url);
      await waitForEngine(page, 'cpu');
      await byTestId('folder-input').setInputFiles(dataset);
      await waitForClassCounts(page, { blue: 3, red: 3 });
      await waitForThumbnails(page, 'red', 3);
      assert.deepEqual(await thumbPaths(page, 'red'), ['red/red-0.png', 'red/red-1.png', 'red/red-2.png']);

      // Add a class by name; a taken or impossible name is refused with the reason.
      await byTestId('new-class-name').fill('  green ');
      await byTestId('new-class-name').press('Enter');
      await waitForClassCounts(page, { blue: 3, green: 0, red: 3 });
      assert.equal(await byTestId('new-class-name').inputValue(), '', 'the field is emptied once added');
      assert.match(await byTestId('train-problem').innerText(), /class "green" has no images/);
      for (const [name, reason] of [['green', /already a class named "green"/], ['a/b', /"\/"/], ['   ', /cannot be empty/]]) {
        await byTestId('new-class-name').fill(name);
        await byTestId('add-class').click();
        await page.waitForFunction(
          (source) => new RegExp(source).test(document.querySelector('[data-testid="add-class-error"]')?.textContent ?? ''),
          reason.source,
          { timeout: 10_000 },
        );
        assert.equal(await byTestId('add-class-error').isVisible(), true);
      }
      await waitForClassCounts(page, { blue: 3, green: 0, red: 3 });

      // Rename by keyboard: Enter saves, and the renamed card keeps the focus.
      await renameByKeyboard(page, 'red', ' crimson ');
      await waitForClassCounts(page, { blue: 3, crimson: 3, green: 0 });
      await page.waitForFunction(() => document.activeElement?.getAttribute('aria-label') === 'Rename class crimson', null, { timeout: 10_000 });
      assert.deepEqual(await thumbPaths(page, 'crimson'), ['red/red-0.png', 'red/red-1.png', 'red/red-2.png']);
      // A taken name is refused on the card, the field stays; Escape leaves the name as it was.
      await renameByKeyboard(page, 'crimson', 'blue');
      const cardError = card(page, 'crimson').locator('[data-testid="card-error"]');
      await cardError.waitFor({ state: 'visible', timeout: 10_000 });
      assert.match(await cardError.innerText(), /already a class named "blue": merge "crimson" into it/);
      assert.equal(await card(page, 'crimson').locator('[data-testid="rename-input"]').isVisible(), true);
      await page.keyboard.press('Escape');
      assert.equal(await card(page, 'crimson').locator('[data-testid="rename-input"]').isVisible(), false);
      await waitForClassCounts(page, { blue: 3, crimson: 3, green: 0 });

      // Move one picture to another class, delete another.
      const moved = card(page, 'crimson').locator('[data-testid="thumb"]').first();
      const movedPath = await moved.getAttribute('title');
      await moved.locator('[data-testid="move-picture"]').selectOption('green');
      await waitForClassCounts(page, { blue: 3, crimson: 2, green: 1 });
      assert.deepEqual(await thumbPaths(page, 'green'), [movedPath]);
      const deleted = card(page, 'blue').locator('[data-testid="thumb"]').first();
      const deletedPath = await deleted.getAttribute('title');
      await deleted.locator('[data-testid="remove-picture"]').focus();
      await page.keyboard.press('Enter');
      await waitForClassCounts(page, { blue: 2, crimson: 2, green: 1 });
      assert.ok(!(await thumbPaths(page, 'blue')).includes(deletedPath));
      // The keyboard's focus moves to the picture that took its place, not to the page's top.
      await page.waitForFunction(
        () => document.activeElement?.getAttribute('data-testid') === 'remove-picture' && document.activeElement.closest('[data-label="blue"]'),
        null,
        { timeout: 10_000 },
      );

      // Merge green into crimson, after a confirmation.
      await card(page, 'green').locator('[data-testid="merge-select"]').selectOption('crimson');
      await card(page, 'green').locator('[data-testid="merge-class"]').click();
      assert.match(await card(page, 'green').locator('[data-testid="card-confirm"]').innerText(), /Merge "green" \(1 picture\) into "crimson"\?/);
      await card(page, 'green').locator('[data-testid="confirm-card-action"]').click();
      await waitForClassCounts(page, { blue: 2, crimson: 3 });

      // Delete a class: Cancel keeps it, confirming removes it.
      await byTestId('new-class-name').fill('spare');
      await byTestId('add-class').click();
      await waitForClassCounts(page, { blue: 2, crimson: 3, spare: 0 });
      await card(page, 'spare').locator('[data-testid="remove-class"]').click();
      await card(page, 'spare').locator('[data-testid="cancel-card-action"]').click();
      await waitForClassCounts(page, { blue: 2, crimson: 3, spare: 0 });
      await card(page, 'spare').locator('[data-testid="remove-class"]').focus();
      await page.keyboard.press('Enter');
      assert.equal(await page.evaluate(() => document.activeElement?.getAttribute('data-testid')), 'confirm-card-action');
      await page.keyboard.press('Enter');
      await waitForClassCounts(page, { blue: 2, crimson: 3 });
      // The keyboard's focus stays in the list: on the card now in the deleted one's place.
      await page.waitForFunction(() => document.activeElement?.getAttribute('data-testid') === 'rename-class', null, { timeout: 10_000 });

      // Files dropped onto a card join that class.
      const dropped = [colourPicture('red', 501), colourPicture('red', 502)].map((png) => png.toString('base64'));
      await card(page, 'blue').evaluate((element, pictures) => {
        const data = new DataTransfer();
        pictures.forEach((base64, i) => {
          const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
          data.items.add(new File([bytes], `dropped-${i}.png`, { type: 'image/png' }));
        });
        element.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
      }, dropped);
      await waitForClassCounts(page, { blue: 4, crimson: 3 });
      assert.deepEqual((await thumbPaths(page, 'blue')).filter((p) => p.includes('dropped')), ['blue/dropped-0.png', 'blue/dropped-1.png']);
      const before = { blue: await thumbPaths(page, 'blue'), crimson: await thumbPaths(page, 'crimson') };

      // A reload brings back every change: names, moves, deletions, drops.
      await page.reload();
      await waitForEngine(page, 'cpu');
      await waitForClassCounts(page, { blue: 4, crimson: 3 });
      await waitForThumbnails(page, 'crimson', 3);
      assert.deepEqual({ blue: await thumbPaths(page, 'blue'), crimson: await thumbPaths(page, 'crimson') }, before);
      assert.ok(before.crimson.includes(movedPath), 'the moved picture is in the class it was merged into');
      assert.equal(await byTestId('library-status').getAttribute('data-restored'), '7');
      assert.equal(await page.locator('[data-testid="error"]').count(), 0, await errorsOn(page));

      // On a phone's width the cards stack and nothing runs off the side of the page.
      await page.setViewportSize({ width: 360, height: 740 });
      await card(page, 'crimson').scrollIntoViewIfNeeded();
      await waitForThumbnails(page, 'crimson', 3);
      if (process.env.WEBTUNE_SCREENSHOT) await page.screenshot({ path: process.env.WEBTUNE_SCREENSHOT });
      const layout = await page.evaluate(() => ({
        page: document.documentElement.scrollWidth,
        viewport: window.innerWidth,
        cards: [...document.querySelectorAll('[data-testid="class-row"]')].map((el) => el.getBoundingClientRect().right),
      }));
      assert.ok(layout.page <= layout.viewport, `the page is ${layout.page} px wide in a ${layout.viewport} px viewport`);
      for (const right of layout.cards) assert.ok(right <= layout.viewport, `a card ends at ${right} px`);
    });
  });

  test('a rename after training keeps the features and the model, under the new name', { timeout: 12 * 60_000 }, async () => {
    const dir = await mkdtemp(join(workDir, 'trained-'));
    const { dataset } = await makeDataset(dir, 3);
    await withPage('rename after training', [], async (page, byTestId) => {
      await page.goto(server.url);
      await waitForEngine(page, 'cpu');
      await byTestId('folder-input').setInputFiles(dataset);
      await waitForClassCounts(page, { blue: 3, red: 3 });
      await openAdvanced(page);
      await byTestId('epochs').fill('2');
      const train = async () => {
        await byTestId('train-button').click();
        await page.waitForSelector('[data-testid="train-status"]:is([data-phase="done"], [data-phase="failed"], [data-phase="stopped"])', {
          timeout: 600_000,
        });
        assert.equal(await byTestId('train-status').getAttribute('data-phase'), 'done', await byTestId('train-status').innerText());
      };
      await train();
      assert.match(await byTestId('feature-progress-text').innerText(), /^Features: 6 \/ 6 images$/);
      // While training ran, the cards could not change (checked on the next run below).

      await renameByKeyboard(page, 'red', 'crimson');
      await waitForClassCounts(page, { blue: 3, crimson: 3 });
      assert.equal(await byTestId('download-button').isDisabled(), false, 'a rename keeps the trained model');
      const evaluated = await page.$$eval('[data-testid="eval-classes"] tbody tr', (rows) => rows.map((row) => row.dataset.label));
      assert.deepEqual(evaluated, ['blue', 'crimson'], 'the results on show name the renamed class');
      const [download] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), byTestId('download-button').click()]);
      const path = join(dir, 'renamed.safetensors');
      await download.saveAs(path);
      const { metadata } = parseSafetensors(await readFile(path));
      assert.equal(metadata.labels, '["blue","crimson"]', 'the downloaded model names the renamed class');

      // The next run computes no feature again: every picture's features were kept.
      await byTestId('train-button').click();
      await page.waitForSelector('[data-testid="train-status"]:not([data-phase="done"])', { timeout: 30_000 });
      assert.equal(await card(page, 'blue').locator('[data-testid="rename-class"]').isDisabled(), true, 'no rename while training');
      await page.waitForSelector('[data-testid="train-status"]:is([data-phase="done"], [data-phase="failed"], [data-phase="stopped"])', {
        timeout: 600_000,
      });
      assert.equal(await byTestId('train-status').getAttribute('data-phase'), 'done');
      assert.equal(await byTestId('feature-progress-text').innerText(), 'Features: all cached from the last run');
    });
  });

  test('a class of 2000 pictures keeps a bounded number of <img> elements', { timeout: 10 * 60_000 }, async () => {
    const COUNT = 2000;
    const dataset = join(await mkdtemp(join(workDir, 'many-')), 'pictures');
    await mkdir(join(dataset, 'many'), { recursive: true });
    for (let i = 0; i < COUNT; i++) {
      const rgb = new Uint8Array(8 * 8 * 3).fill(i % 251);
      await writeFile(join(dataset, 'many', `p${String(i).padStart(4, '0')}.png`), encodePng(8, 8, rgb));
    }
    await withPage('many pictures', [], async (page, byTestId) => {
      await page.goto(server.url);
      await waitForEngine(page, 'cpu');
      await byTestId('folder-input').setInputFiles(dataset);
      await waitForClassCounts(page, { many: COUNT }, 8 * 60_000);
      const images = () => page.locator('img').count();
      const thumbs = card(page, 'many').locator('[data-testid="thumbs"]');
      // A few rows of the first pictures, not 2000.
      await page.waitForFunction(() => document.querySelectorAll('[data-testid="thumb"] img').length > 0, null, { timeout: 30_000 });
      const first = await images();
      console.log(`# ${COUNT} pictures: ${first} <img> elements at the top of the class`);
      assert.ok(first > 0 && first <= 120, `${first} <img> elements`);
      assert.ok(await card(page, 'many').locator('[data-testid="thumb"][data-key="1"]').count() === 1, 'the first picture is shown');
      // Scrolled to the end: the last pictures are shown, the first are gone, still bounded.
      await thumbs.evaluate((box) => {
        box.scrollTop = box.scrollHeight;
      });
      await page.waitForFunction(
        (count) => document.querySelector(`[data-testid="thumb"][data-key="${count}"]`) !== null,
        COUNT,
        { timeout: 30_000 },
      );
      const last = await images();
      console.log(`# ${COUNT} pictures: ${last} <img> elements at the end of the class`);
      assert.ok(last > 0 && last <= 120, `${last} <img> elements`);
      assert.equal(await card(page, 'many').locator('[data-testid="thumb"][data-key="1"]').count(), 0, 'pictures out of view are not rendered');
    });
  });
});
