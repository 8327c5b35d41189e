// The project file: train a small model, save the project, start a new project and reload, open
// the file: the classes, pictures, settings and predictions are the same as before. A project
// picked as a plain zip opens as a project too. Files that are not projects (a picture renamed,
// a zip of something else, a project from a newer webtune) are refused with a message, and
// nothing on the page changes.
//
//   cd www && npm run build -- --mode bench && cd .. && node --test tests/e2e/project.test.mjs

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from './support/server.mjs';
import { errorsOn, makeDataset, openAdvanced, storedPictures, waitForClassCounts, waitForEngine, withPage } from './support/page.mjs';
import { parseSafetensors } from './support/safetensors.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DIST = resolve(process.env.WEBTUNE_DIST ?? join(ROOT, 'www', 'dist'));
const { unzipSync, zipSync, strToU8, strFromU8 } = createRequire(join(ROOT, 'www/package.json'))('fflate');

/** The settings changed from their defaults before training, by test id. */
const SETTINGS = { epochs: '4', 'learning-rate': '0.002', 'validation-percent': '0', seed: '7', 'hidden-units': '16' };

let server;
let workDir;

/** Classifies `files` on the page: `{file: [[label, probability], ...]}`. */
async function predictions(page, files) {
  await page.locator('[data-testid="predict-input"]').setInputFiles(files);
  await page.waitForFunction(
    (count) => {
      const items = [...document.querySelectorAll('[data-testid="prediction"]')];
      return items.length === count && items.every((item) => item.dataset.topLabel || item.dataset.error);
    },
    files.length,
    { timeout: 120_000 },
  );
  return page.$$eval('[data-testid="prediction"]', (items) =>
    Object.fromEntries(
      items.map((item) => [
        item.dataset.file,
        item.dataset.error ?? [...item.querySelectorAll('[data-label]')].map((li) => [li.dataset.label, li.dataset.probability]),
      ]),
    ),
  );
}

async function settingsShown(page) {
  const shown = {};
  for (const id of Object.keys(SETTINGS)) shown[id] = await page.locator(`[data-testid="${id}"]`).inputValue();
  return shown;
}

/** Waits for the project to be opened; an earlier refusal may still be shown when this starts. */
async function waitForProject(page) {
  const status = page.locator('[data-testid="project-status"]');
  await page.waitForSelector('[data-testid="project-status"][data-state="opened"]', { timeout: 300_000 }).catch(async (error) => {
    throw new Error(`the project never opened: ${await status.innerText()}\n${error.message}`);
  });
  return status.innerText();
}

describe('the project file', () => {
  before(async () => {
    assert.ok(existsSync(join(DIST, 'index.html')), `the built page is missing (${DIST}): run \`npm run build\` in www/`);
    server = await serveStatic(DIST);
    workDir = await mkdtemp(join(tmpdir(), 'webtune-e2e-project-'));
  });
  after(async () => {
    await server?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test('save, new project and reload, open: classes, pictures, settings and predictions come back, compact copies exactly', { timeout: 12 * 60_000 }, async () => {
    const { dataset, pictures } = await makeDataset(await mkdtemp(join(workDir, 'trip-')), 3);
    const heldOut = [pictures.red, pictures.blue];
    const saved = join(workDir, 'saved.webtune');
    await withPage('project', [], async (page, byTestId) => {
      await page.goto(`${server.url}?backend=cpu`);
      await waitForEngine(page, 'cpu');
      assert.equal(await byTestId('save-project').isDisabled(), true, 'nothing to save yet');
      await byTestId('folder-input').setInputFiles(dataset);
      await waitForClassCounts(page, { blue: 3, red: 3 });
      await openAdvanced(page);
      for (const [id, value] of Object.entries(SETTINGS)) await byTestId(id).fill(value);
      await byTestId('train-button').click();
      await page.waitForSelector('[data-testid="train-status"]:is([data-phase="done"], [data-phase="failed"])', { timeout: 300_000 });
      assert.equal(await byTestId('train-status').getAttribute('data-phase'), 'done', await byTestId('train-status').innerText());
      const before = await predictions(page, heldOut);

      const [download] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), byTestId('save-project').click()]);
      assert.match(download.suggestedFilename(), /^webtune-project-\d{4}-\d{2}-\d{2}\.webtune$/);
      await download.saveAs(saved);

      // What the file holds: the manifest, every picture's bytes, the model.
      const entries = unzipSync(new Uint8Array(await readFile(saved)));
      const manifest = JSON.parse(strFromU8(entries['manifest.json']));
      assert.equal(manifest.format, 'webtune-project');
      assert.equal(manifest.version, 1);
      assert.equal(manifest.backbone, 'efficientnet_lite0');
      assert.deepEqual([...manifest.classes].sort(), ['blue', 'red']);
      assert.equal(manifest.recipe.head.epochs, 4);
      assert.equal(manifest.recipe.head.hiddenUnits, 16);
      assert.equal(manifest.pictures.length, 6);
      for (const picture of manifest.pictures) {
        assert.ok(entries[picture.entry], `${picture.entry} is in the file`);
        assert.deepEqual(Buffer.from(entries[picture.entry]), await readFile(join(dataset, picture.label, picture.name)), `${picture.path} byte for byte`);
      }
      const model = parseSafetensors(entries[manifest.model.entry]);
      assert.deepEqual(JSON.parse(model.metadata.labels), manifest.model.classes);

      // A new project, then a reload: an empty page with the defaults.
      page.once('dialog', (dialog) => void dialog.accept());
      await byTestId('new-project').click();
      await page.waitForFunction(() => document.querySelectorAll('[data-testid="class-row"]').length === 0);
      await page.reload();
      await waitForEngine(page, 'cpu');
      await openAdvanced(page);
      assert.notDeepEqual(await settingsShown(page), SETTINGS, 'the reload starts from the defaults');
      assert.equal(await byTestId('download-button').isDisabled(), true);

      await byTestId('project-input').setInputFiles(saved);
      const said = await waitForProject(page);
      assert.match(said, /^Opened saved\.webtune: 2 classes, 6 pictures, the settings; the trained model is ready to try\.$/);
      await waitForClassCounts(page, { blue: 3, red: 3 });
      assert.deepEqual(await settingsShown(page), SETTINGS);
      assert.equal(await byTestId('download-button').isDisabled(), false, 'the reopened model can be downloaded');
      assert.deepEqual(await predictions(page, heldOut), before, 'the reopened model predicts exactly as before');

      // Not projects: nothing changes, and the page says why.
      const refusedFiles = {
        'picture.webtune': await readFile(pictures.red),
        'other.zip': Buffer.from(zipSync({ 'cats/a.txt': strToU8('not a project') })),
        'newer.webtune': Buffer.from(zipSync({ 'manifest.json': strToU8(JSON.stringify({ ...manifest, version: 99 })) })),
      };
      const why = { 'picture.webtune': /not a readable zip file/, 'other.zip': /no manifest\.json/, 'newer.webtune': /newer webtune \(project version 99\)/ };
      for (const [name, bytes] of Object.entries(refusedFiles)) {
        const path = join(workDir, name);
        await writeFile(path, bytes);
        await byTestId('project-input').setInputFiles(path);
        // Each file's own refusal (the one before says another reason).
        await page
          .waitForFunction(
            (source) => {
              const status = document.querySelector('[data-testid="project-status"]');
              return status?.dataset.state === 'refused' && new RegExp(source).test(status.textContent ?? '');
            },
            why[name].source,
            { timeout: 60_000 },
          )
          .catch(() => {});
        const text = await byTestId('project-status').innerText();
        assert.match(text, why[name], text);
        assert.match(text, /Nothing on the page changed\.$/);
        await waitForClassCounts(page, { blue: 3, red: 3 });
        assert.equal(await byTestId('download-button').isDisabled(), false, `${name} leaves the model`);
      }

      // The same project picked as a plain zip opens as a project, once the user agrees to replace the pictures.
      const asZip = join(workDir, 'copy.zip');
      await copyFile(saved, asZip);
      page.once('dialog', (dialog) => void dialog.accept());
      await byTestId('zip-input').setInputFiles(asZip);
      await waitForProject(page);
      await waitForClassCounts(page, { blue: 3, red: 3 });
      assert.deepEqual(await settingsShown(page), SETTINGS);

      // Dropped on the pictures' drop zone, a .webtune file opens as a project, not as a picture.
      // (The file, with its model, is megabytes: it reaches the page through a scratch file input.)
      const dropped = join(workDir, 'dropped.webtune');
      await copyFile(saved, dropped);
      await page.evaluate(() => {
        const scratch = Object.assign(document.createElement('input'), { type: 'file', id: 'scratch-input', hidden: true });
        document.body.append(scratch);
      });
      await page.locator('#scratch-input').setInputFiles(dropped);
      page.once('dialog', (dialog) => void dialog.accept());
      await page.evaluate(() => {
        const scratch = document.querySelector('#scratch-input');
        const data = new DataTransfer();
        data.items.add(scratch.files[0]);
        scratch.remove();
        document.querySelector('[data-testid="drop-zone"]').dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
      });
      await page.waitForFunction(() => document.querySelector('[data-testid="project-status"]')?.textContent?.startsWith('Opened dropped.webtune'), null, {
        timeout: 300_000,
      });
      await waitForClassCounts(page, { blue: 3, red: 3 });
      const listed = await page.$$eval('[data-testid="file-problem"]', (items) => items.map((item) => item.textContent));
      assert.ok(!listed.some((p) => p.includes('dropped.webtune')), `the project file is not listed as a bad picture: ${listed.join(' | ')}`);
      assert.deepEqual(await predictions(page, heldOut), before, 'the model opened from the dropped file predicts as before');
      assert.equal(await page.locator('[data-testid="error"]').count(), 0, await errorsOn(page));

      // After a reload the page holds compact copies: a project saved then marks them so, and
      // opening it takes them back byte for byte, not compressed a second time. A flag that lies
      // (an original PNG marked compact) costs nothing: the engine makes and keeps its own copy.
      await page.reload();
      await waitForEngine(page, 'cpu');
      await waitForClassCounts(page, { blue: 3, red: 3 });
      const [again] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), byTestId('save-project').click()]);
      const resaved = unzipSync(new Uint8Array(await readFile(await again.path())));
      const compactManifest = JSON.parse(strFromU8(resaved['manifest.json']));
      assert.deepEqual(
        compactManifest.pictures.map((p) => [p.compact, resaved[p.entry][0], resaved[p.entry][1]]),
        compactManifest.pictures.map(() => [true, 0xff, 0xd8]),
        'restored pictures are saved as the compact JPEGs they are, marked so',
      );
      const liar = { entry: 'pictures/999999-liar.png', label: 'red', path: 'red/liar.png', name: 'liar.png', compact: true };
      const lying = join(workDir, 'lying.webtune');
      await writeFile(
        lying,
        zipSync({
          ...resaved,
          [liar.entry]: new Uint8Array(await readFile(pictures.red)),
          'manifest.json': strToU8(JSON.stringify({ ...compactManifest, pictures: [...compactManifest.pictures, liar] })),
        }),
      );
      page.once('dialog', (dialog) => void dialog.accept());
      await byTestId('project-input').setInputFiles(lying);
      await waitForProject(page);
      await waitForClassCounts(page, { blue: 3, red: 4 });
      const stored = await storedPictures(page);
      assert.ok(stored.every((p) => p.compact && p.jpeg), JSON.stringify(stored));
      const sizes = stored.map((p) => p.size).sort((a, b) => a - b);
      for (const p of compactManifest.pictures) {
        const at = sizes.indexOf(resaved[p.entry].length);
        assert.ok(at >= 0, `${p.path} is kept as the ${resaved[p.entry].length} bytes saved: ${sizes}`);
        sizes.splice(at, 1);
      }
      assert.equal(sizes.length, 1, 'and the liar as the engine\'s own copy');
    });
  });
});
