// Browser tests of what survives a reload or an engine crash (issue 12): the page asks before a
// reload would lose pictures not yet stored, and reloads while the restored pictures are given to
// the new engine lose nothing; an engine that dies during training is restarted with every picture and its run
// continues from the checkpoint; a stored picture the engine dies on is forgotten only after it
// killed the engine twice running; pictures an earlier version stored as original files come back
// and are stored as the engine's compact copies. The crashes are acted out by the worker (`?simulate=`, see
// www/src/engine/protocol.ts).
//
//   cd www && npm run build -- --mode bench && cd .. && node --test tests/e2e/recovery.test.mjs

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHROMIUM } from './support/chromium.mjs';
import { serveStatic } from './support/server.mjs';
import { colourPicture } from './support/png.mjs';
import { errorsOn, makeDataset, shortPhaseTwo, storedPictures, trainUntilDone, waitForClassCounts, waitForEngine, withPage } from './support/page.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DIST = resolve(process.env.WEBTUNE_DIST ?? join(ROOT, 'www', 'dist'));

let server;
let workDir;

describe('reloads and engine crashes lose nothing', () => {
  before(async () => {
    assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}`);
    assert.ok(existsSync(join(DIST, 'index.html')), `the built page is missing (${DIST}/index.html): run \`npm run build\` in www/`);
    server = await serveStatic(DIST);
    workDir = await mkdtemp(join(tmpdir(), 'webtune-recovery-'));
  });

  after(async () => {
    await server?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test('the page asks before a reload would lose unstored pictures, and reloads while pictures are restored lose none', { timeout: 8 * 60_000 }, async () => {
    const { dataset } = await makeDataset(await mkdtemp(join(workDir, 'reload-')), 12);
    const all = { blue: 12, red: 12 };
    /** Whether leaving the page now would make the browser ask first (a `beforeunload` cancelled). */
    const asksBeforeLeaving = () =>
      page.evaluate(() => {
        const event = new Event('beforeunload', { cancelable: true });
        dispatchEvent(event);
        return event.defaultPrevented;
      });
    let page;
    await withPage('reload', [], async (opened, byTestId) => {
      page = opened;
      await page.goto(`${server.url}?backend=cpu`);
      await waitForEngine(page, 'cpu');
      assert.equal(await asksBeforeLeaving(), false, 'nothing to store yet');
      await byTestId('folder-input').setInputFiles(dataset);
      // While pictures wait for their batch or their write, leaving is asked about. The status
      // attribute is drawn a frame after the count it shows changes, so it can still say
      // "storing" once the last write ended (a race that failed CI): the page must ask at some
      // moment the status says pictures are unstored, within the minute adding them takes.
      const askedWhileStoring = await page
        .waitForFunction(
          () => {
            const status = document.querySelector('[data-testid="library-status"]');
            if (!status || status.getAttribute('data-storing') === '0') return false;
            const event = new Event('beforeunload', { cancelable: true });
            dispatchEvent(event);
            return event.defaultPrevented;
          },
          null,
          { timeout: 60_000, polling: 5 },
        )
        .then(
          () => true,
          () => false,
        );
      assert.equal(askedWhileStoring, true, 'pictures not yet stored');
      await waitForClassCounts(page, all);
      assert.equal(await asksBeforeLeaving(), false, 'every picture stored');

      await page.reload();
      await waitForEngine(page, 'cpu');
      // The new engine is being given the 24 stored pictures: reload in the middle, twice.
      for (let i = 0; i < 2; i++) {
        await page.evaluate(() => location.reload());
        await page.waitForEvent('load');
        await waitForEngine(page, 'cpu');
      }
      await waitForClassCounts(page, all);
      await page.reload();
      await waitForEngine(page, 'cpu');
      await waitForClassCounts(page, all);
      const problems = await page.$$eval('[data-testid="file-problem"]', (items) => items.map((item) => item.textContent));
      assert.ok(problems.every((text) => /broken\.png|notes\.txt/.test(text)), `only the two bad files are listed: ${problems.join(' | ')}`);
    });
  });

  test('an engine that dies during training is restarted with every picture, and the run continues from its checkpoint', { timeout: 12 * 60_000 }, async () => {
    const { dataset } = await makeDataset(await mkdtemp(join(workDir, 'crash-')), 4);
    await withPage('crash-in-training', [], async (page, byTestId) => {
      await page.goto(`${server.url}?backend=cpu&simulate=crash-in-training`);
      await waitForEngine(page, 'cpu');
      await byTestId('folder-input').setInputFiles(dataset);
      await waitForClassCounts(page, { blue: 4, red: 4 });
      await shortPhaseTwo(page, 4);
      await byTestId('train-button').click();
      // The engine dies after its first fine-tuning checkpoint.
      await page.waitForSelector('[data-testid="train-status"][data-phase="failed"]', { timeout: 300_000 });
      assert.match(await byTestId('train-status').innerText(), /crashed during training.*restarted and your images were kept/s);
      await waitForEngine(page, 'cpu');
      await waitForClassCounts(page, { blue: 4, red: 4 });
      await page.waitForSelector('[data-testid="checkpoint"][data-phase="fine"]:not([hidden])', { timeout: 30_000 });
      assert.match(await byTestId('checkpoint').innerText(), /A checkpoint was kept at phase 2, fine-tuning epoch 1; EfficientNet-Lite0, classes blue, red\./);

      await byTestId('checkpoint-continue').click();
      await page.waitForSelector('[data-testid="backbone-status"][data-status="ready"][data-file="webtune-checkpoint-phase2-epoch1.safetensors"]', {
        state: 'attached',
        timeout: 120_000,
      });
      await waitForClassCounts(page, { blue: 4, red: 4 });
      await shortPhaseTwo(page, 1);
      await trainUntilDone(page);
      assert.equal(await page.locator('[data-testid="epoch-row"][data-stage="fine"]').count(), 1);
      assert.equal(await byTestId('backend-label').getAttribute('data-status'), 'ready', await errorsOn(page));
    });
  });

  test('the CPU engine trains on two cores, and goes on with one when its helper worker dies', { timeout: 10 * 60_000 }, async () => {
    const { dataset } = await makeDataset(await mkdtemp(join(workDir, 'helper-')), 4);
    for (const simulate of [null, 'helper-crash']) {
      await withPage(`helper-${simulate ?? 'working'}`, [], async (page, byTestId) => {
        await page.goto(`${server.url}?backend=cpu${simulate ? `&simulate=${simulate}` : ''}`);
        await waitForEngine(page, 'cpu');
        assert.equal(await byTestId('backend-label').getAttribute('data-workers'), '2');
        assert.match(await byTestId('backend-label').innerText(), /CPU \(WebAssembly\) on 2 cores/);
        await byTestId('folder-input').setInputFiles(dataset);
        await waitForClassCounts(page, { blue: 4, red: 4 });
        await shortPhaseTwo(page, 3);
        await trainUntilDone(page);
        assert.equal(await page.locator('[data-testid="epoch-row"][data-stage="fine"]').count(), 3);
        const answers = Number(await byTestId('train-status').getAttribute('data-helper-answers'));
        const notes = (await page.locator('[data-testid="train-note"]').allInnerTexts()).join(' | ');
        if (simulate) {
          assert.equal(answers, 3, 'the helper answered three requests before it died');
          assert.match(notes, /the second core's worker stopped \(.*simulated.*\), so training went on with one core/);
          assert.equal(await byTestId('backend-label').getAttribute('data-workers'), '1');
        } else {
          // The backbone, features of half the pictures, phase 2's setup and half of each step.
          assert.ok(answers >= 4, `the helper answered ${answers} requests`);
          assert.doesNotMatch(notes, /second core/);
        }
        assert.equal(await errorsOn(page), 'no page errors shown');
      });
    }
  });

  test('a stored picture the engine dies on is forgotten only once it killed the engine twice', { timeout: 8 * 60_000 }, async () => {
    const { dataset } = await makeDataset(await mkdtemp(join(workDir, 'deadly-')), 3);
    await withPage('crash-on-file', [], async (page, byTestId) => {
      await page.goto(`${server.url}?backend=cpu`);
      await waitForEngine(page, 'cpu');
      await byTestId('folder-input').setInputFiles(dataset);
      await waitForClassCounts(page, { blue: 3, red: 3 });
      // Stored by now: the next visit's engines die whenever they are given red-1.png.
      await page.goto(`${server.url}?backend=cpu&simulate=crash-on-file&file=red-1.png`);
      await waitForEngine(page, 'cpu');
      await waitForClassCounts(page, { blue: 3, red: 2 });
      const problem = page.locator('[data-testid="file-problem"][data-path$="red-1.png"]');
      await problem.waitFor({ timeout: 60_000 });
      assert.match(await problem.innerText(), /the engine crashed twice while reading this file/);
      // Two crashes, two restarts; then every other picture was given to the engine.
      const errors = await page.$$eval('[data-testid="error"]', (items) => items.map((item) => item.textContent));
      assert.equal(errors.filter((text) => /The training engine crashed: .*It has been restarted/.test(text)).length, 2, errors.join(' | '));
      // Forgotten for good; the rest stays.
      await page.goto(`${server.url}?backend=cpu`);
      await waitForEngine(page, 'cpu');
      await waitForClassCounts(page, { blue: 3, red: 2 });
    });
  });

  test('pictures an earlier version stored as original files come back, and are kept as compact copies from then on', { timeout: 5 * 60_000 }, async () => {
    const originals = ['red', 'red', 'blue', 'blue'].map((colour, i) => ({
      label: colour,
      name: `${colour}-${i}.png`,
      base64: colourPicture(colour, 700 + i, 300).toString('base64'),
    }));
    await withPage('earlier-version', [], async (page) => {
      await page.goto(`${server.url}?backend=cpu`);
      await waitForEngine(page, 'cpu');
      // Records as the page wrote them before compact copies: the file's own bytes and type.
      await page.evaluate(async (originals) => {
        const db = await new Promise((resolve, reject) => {
          const open = indexedDB.open('webtune');
          open.onsuccess = () => resolve(open.result);
          open.onerror = () => reject(open.error);
        });
        const store = db.transaction('library', 'readwrite').objectStore('library');
        originals.forEach(({ label, name, base64 }, key) => {
          const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
          const record = { key, label, path: `${label}/${name}`, name, type: 'image/png', lastModified: 0, bytes: new Blob([bytes], { type: 'image/png' }) };
          store.put(record, ['picture', key]);
        });
        await new Promise((resolve, reject) => {
          store.transaction.oncomplete = resolve;
          store.transaction.onerror = () => reject(store.transaction.error);
        });
        db.close();
      }, originals);
      assert.deepEqual((await storedPictures(page)).map((p) => [p.compact, p.type]), Array(4).fill([undefined, 'image/png']));

      await page.reload();
      await waitForEngine(page, 'cpu');
      await waitForClassCounts(page, { blue: 2, red: 2 });
      await page.waitForFunction(() => document.querySelector('[data-testid="library-status"]')?.getAttribute('data-storing') === '0');
      // Rewritten as the engine's copies: JPEGs, smaller than the 300×300 PNGs.
      const records = await storedPictures(page);
      assert.equal(records.length, 4);
      for (const [i, record] of records.entries()) {
        assert.deepEqual([record.compact, record.type, record.jpeg], [true, 'image/jpeg', true], JSON.stringify(record));
        assert.ok(record.size < Buffer.from(originals[i].base64, 'base64').length, JSON.stringify(record));
      }
      // And they come back from those.
      await page.reload();
      await waitForEngine(page, 'cpu');
      await waitForClassCounts(page, { blue: 2, red: 2 });
      assert.equal(await page.locator('[data-testid="file-problem"]').count(), 0, await errorsOn(page));
    });
  });
});
