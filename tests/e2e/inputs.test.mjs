// Browser tests of the ways pictures get in and out of the page: one tree labelled alike as a
// folder and as zips, a zip of class folders (picked and dropped; wrapped, clutter, unsafe,
// encrypted and damaged zips), a picture
// pasted from the clipboard, the webcam through Chromium's fake capture device (press and hold
// to capture into a class; live predictions in "Try it"), and the sample project trained end to
// end with Pause/Resume on the way.
//
//   cd www && npm run build -- --mode bench && cd .. && node --test tests/e2e/inputs.test.mjs
//
// The sample project must be in the built page (www/public/sample, made by scripts/common.sh
// `make_sample_project`, before the build).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from './support/server.mjs';
import { CHROMIUM } from './support/chromium.mjs';
import { colourPicture } from './support/png.mjs';
import { markEncrypted } from './support/hostile.mjs';
import { errorsOn, offerFolder, openAdvanced, waitForClassCounts, waitForEngine, withPage } from './support/page.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DIST = resolve(process.env.WEBTUNE_DIST ?? join(ROOT, 'www/dist'));
const { zipSync } = createRequire(join(ROOT, 'www/package.json'))('fflate');
const FAKE_CAMERA = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'];

let server;
let workDir;

/** A zip of `files` ({path: bytes}), stored (level 0) so that tests can patch its headers. */
function makeZip(files, level = 6) {
  return Buffer.from(zipSync(Object.fromEntries(Object.entries(files).map(([path, bytes]) => [path, [bytes, { level }]]))));
}

/** The "Choose a folder…" button (a label around the folder input). */
const folderButton = (page) => page.locator('label:has([data-testid="folder-input"])');

async function problems(page) {
  return page.$$eval('[data-testid="file-problem"]', (items) => items.map((item) => item.textContent));
}

describe('getting pictures in, and the sample project', () => {
  before(async () => {
    assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}`);
    assert.ok(existsSync(join(DIST, 'index.html')), `the built page is missing (${DIST}/index.html)`);
    workDir = await mkdtemp(join(tmpdir(), 'webtune-inputs-'));
    // Folders the page copies into its own file system, to be handed over by `showDirectoryPicker`.
    server = await serveStatic(DIST, { '/offered/': workDir });
  });

  after(async () => {
    await server?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test('one tree picked as a folder (input or picker), zipped, and zipped inside a wrapping folder gets the same classes as in the CLI', { timeout: 6 * 60_000 }, async () => {
    // The tree of src/bin/webtune/labelled_files/tests.rs (`a_folder_and_a_zip_of_it_are_labelled_alike`),
    // where the CLI's folder and zip readers label it so: the class is the first folder below
    // the root at any depth, clutter and hidden folders are skipped, a file at the top is reported.
    const tree = {
      'cats/a.png': colourPicture('red', 1),
      'cats/2024/summer/b.png': colourPicture('red', 2),
      // Before the folder `2024/` in the CLI's order (the paths' bytes), after it component by component.
      'cats/2024 b.png': colourPicture('red', 4),
      'dogs/c.png': colourPicture('blue', 3),
      'dogs/.DS_Store': Buffer.from('clutter'),
      '.git/objects/ab': Buffer.from('blob'),
      '__MACOSX/dogs/._c.png': Buffer.from('fork'),
      'readme.txt': Buffer.from('not in a class'),
    };
    const expected = { cats: 3, dogs: 1 };
    // The order the CLI lists them in (its test), which the seeded split follows.
    const catsInOrder = ['cats/2024 b.png', 'cats/2024/summer/b.png', 'cats/a.png'];
    const folder = join(workDir, 'tree', 'pets');
    for (const [path, bytes] of Object.entries(tree)) {
      await mkdir(dirname(join(folder, path)), { recursive: true });
      await writeFile(join(folder, path), bytes);
    }
    const zipped = join(workDir, 'tree.zip');
    await writeFile(zipped, makeZip(tree));
    const wrapped = join(workDir, 'wrapped.zip');
    const { 'readme.txt': _, ...classes } = tree;
    await writeFile(wrapped, makeZip(Object.fromEntries(Object.entries(classes).map(([path, bytes]) => [`pets/${path}`, bytes]))));
    // Two folders whose names read as one class once trimmed: neither is merged into the other.
    const spaced = join(workDir, 'spaced');
    for (const [path, colour] of [['cat/a.png', 'red'], ['cat /b.png', 'red'], ['dog/c.png', 'blue']]) {
      await mkdir(dirname(join(spaced, path)), { recursive: true });
      await writeFile(join(spaced, path), colourPicture(colour, 9));
    }

    for (const [how, add] of [
      ['folder', (byTestId) => byTestId('folder-input').setInputFiles(folder)],
      // The folder button in a browser with `showDirectoryPicker`, handed the same folder.
      [
        'folder picker',
        async (_, page) => {
          await offerFolder(page, `${server.url}offered/tree/pets/`, folder);
          await folderButton(page).click();
        },
      ],
      ['zip', (byTestId) => byTestId('zip-input').setInputFiles(zipped)],
      ['wrapped zip', (byTestId) => byTestId('zip-input').setInputFiles(wrapped)],
    ]) {
      await withPage(`tree-${how.replace(' ', '-')}`, [], async (page, byTestId) => {
        await page.goto(server.url);
        await waitForEngine(page, 'cpu');
        await add(byTestId, page);
        await waitForClassCounts(page, expected);
        const listed = await problems(page);
        const stray = how === 'wrapped zip' ? [] : ['readme.txt'];
        assert.deepEqual(listed.map((p) => p.split(':')[0].trim()).sort(), stray, `${how}: ${listed.join(' | ')}`);
        const cats = await page.$$eval('[data-testid="class-row"][data-label="cats"] [data-testid="thumb"]', (thumbs) =>
          thumbs.sort((a, b) => Number(a.dataset.key) - Number(b.dataset.key)).map((thumb) => thumb.title),
        );
        assert.deepEqual(cats, catsInOrder, `${how}: added in the CLI's order`);
        if (how === 'folder') {
          await byTestId('folder-input').setInputFiles(spaced);
          await waitForClassCounts(page, { ...expected, dog: 1 });
          const after = await problems(page);
          for (const name of ['cat/a.png', 'cat /b.png']) {
            assert.ok(after.some((p) => p.includes(name) && p.includes('class folders "cat " and "cat" all read as "cat"')), after.join(' | '));
          }
        }
      });
    }
  });

  test('the folder button: a closed folder dialog changes nothing, a failing one is named and the next click opens the input\'s dialog', { timeout: 4 * 60_000 }, async () => {
    const folder = join(workDir, 'button');
    for (const [i, [path, colour]] of [['red/a.png', 'red'], ['red/b.png', 'red'], ['blue/c.png', 'blue']].entries()) {
      await mkdir(dirname(join(folder, path)), { recursive: true });
      await writeFile(join(folder, path), colourPicture(colour, 40 + i));
    }
    await withPage('folder-button', [], async (page, byTestId) => {
      await page.goto(server.url);
      await waitForEngine(page, 'cpu');
      await page.evaluate(() => {
        window.showDirectoryPicker = async () => {
          throw new DOMException('The user aborted a request.', 'AbortError');
        };
      });
      await folderButton(page).click();
      await page.waitForTimeout(500);
      assert.equal(await errorsOn(page), 'no page errors shown', 'closing the dialog is not an error');
      assert.equal(await byTestId('class-row').count(), 0);

      // A picker the browser refuses (say, in a frame that may not use it): named, and the
      // input's own dialog opens from then on.
      await page.evaluate(() => {
        window.showDirectoryPicker = async () => {
          throw new DOMException('File System Access is not allowed here.', 'SecurityError');
        };
      });
      await folderButton(page).click();
      await page.waitForFunction(() => document.querySelector('[data-testid="error-list"]')?.textContent.includes('could not be opened'));
      assert.match(await errorsOn(page), /File System Access is not allowed here/);
      const chooser = page.waitForEvent('filechooser');
      await folderButton(page).click();
      await (await chooser).setFiles(folder);
      await waitForClassCounts(page, { red: 2, blue: 1 });

      // Through the picker, a class folder with nothing in it is still a class (as when it is
      // dropped); the input cannot see it.
      await page.reload();
      await waitForEngine(page, 'cpu');
      await waitForClassCounts(page, { red: 2, blue: 1 });
      const more = join(workDir, 'more');
      await mkdir(join(more, 'red'), { recursive: true });
      await mkdir(join(more, 'empty'));
      await writeFile(join(more, 'red', 'd.png'), colourPicture('red', 77));
      await offerFolder(page, `${server.url}offered/more/`, more);
      await folderButton(page).click();
      await waitForClassCounts(page, { red: 3, blue: 1, empty: 0 });
    });
  });

  test('zips of class folders: picked or dropped, clutter skipped, bad entries and bad zips reported', { timeout: 8 * 60_000 }, async () => {
    let seed = 1;
    const picture = (colour) => colourPicture(colour, seed++);
    // Wrapped in a top folder (as "compress this folder" makes it), with clutter, a nested
    // picture (labelled by its class folder) and a `..` name.
    const wrapped = join(workDir, 'pets.zip');
    await writeFile(
      wrapped,
      makeZip({
        'pets/red/a.png': picture('red'),
        'pets/red/b.png': picture('red'),
        'pets/red/nested/c.png': picture('red'),
        'pets/blue/a.png': picture('blue'),
        'pets/blue/b.png': picture('blue'),
        'pets/.DS_Store': Buffer.from('clutter'),
        '__MACOSX/pets/red/._a.png': Buffer.from('clutter'),
        'pets/../evil.png': picture('red'),
      }),
    );
    // No top folder, a picture at the top (no class), stored entries; one marked encrypted.
    const plain = join(workDir, 'plain.zip');
    await writeFile(plain, makeZip({ 'green/a.png': picture('green'), 'green/b.png': picture('green'), 'readme.png': picture('blue') }, 0));
    const encrypted = join(workDir, 'locked.zip');
    await writeFile(encrypted, markEncrypted(makeZip({ 'green/secret.png': picture('green') }, 0)));
    // Two class folders that read as one label once trimmed: refused as a whole, as by the CLI.
    const merged = join(workDir, 'merged.zip');
    await writeFile(merged, makeZip({ 'cat/a.png': picture('red'), 'cat /b.png': picture('red') }));
    const damaged = join(workDir, 'damaged.zip');
    const whole = makeZip({ 'red/x.png': picture('red'), 'blue/y.png': picture('blue') });
    await writeFile(damaged, whole.subarray(0, Math.floor(whole.length / 2)));

    await withPage('zip', [], async (page, byTestId) => {
      await page.goto(server.url);
      await waitForEngine(page, 'cpu');
      await byTestId('zip-input').setInputFiles(wrapped);
      await waitForClassCounts(page, { blue: 2, red: 3 });
      const listed = await problems(page);
      assert.ok(listed.some((p) => p.includes('evil.png') && p.includes('unsafe name')), listed.join(' | '));
      assert.ok(!listed.some((p) => p.includes('DS_Store') || p.includes('MACOSX')), `clutter is skipped silently: ${listed.join(' | ')}`);

      // A damaged zip: one clear error, and nothing already added is lost.
      await byTestId('zip-input').setInputFiles(damaged);
      await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="error"]')].some((e) => e.textContent.includes('damaged.zip')));
      assert.match(await errorsOn(page), /damaged\.zip: not a readable zip file \(truncated or damaged\?\)/);
      await waitForClassCounts(page, { blue: 2, red: 3 });

      await byTestId('zip-input').setInputFiles(merged);
      await page.waitForFunction(() => [...document.querySelectorAll('[data-testid="error"]')].some((e) => e.textContent.includes('merged.zip')));
      assert.match(await errorsOn(page), /merged\.zip: class folders "cat " and "cat" all read as "cat"/);
      await waitForClassCounts(page, { blue: 2, red: 3 });

      // An encrypted entry is listed with the reason; a zip dropped onto the drop zone is read too.
      await byTestId('zip-input').setInputFiles(encrypted);
      await page.waitForFunction(() =>
        [...document.querySelectorAll('[data-testid="file-problem"]')].some((e) => e.textContent.includes('secret.png')),
      );
      assert.ok((await problems(page)).some((p) => p.includes('secret.png') && p.includes('encrypted')));
      const bytes = [...(await import('node:fs')).readFileSync(plain)];
      await page.evaluate((bytes) => {
        const data = new DataTransfer();
        data.items.add(new File([new Uint8Array(bytes)], 'plain.zip', { type: 'application/zip' }));
        document.querySelector('[data-testid="drop-zone"]').dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
      }, bytes);
      await waitForClassCounts(page, { blue: 2, green: 2, red: 3 });
      const after = await problems(page);
      assert.ok(after.some((p) => p.includes('readme.png') && p.includes('not in a class folder')), after.join(' | '));
      assert.ok(!after.some((p) => p.includes('plain.zip')), 'the dropped zip is not itself listed as a stray file');
    });
  });

  test('a pasted picture and webcam captures go into the chosen class; New project empties the page', { timeout: 6 * 60_000 }, async () => {
    await withPage('paste-webcam', FAKE_CAMERA, async (page, byTestId) => {
      await page.goto(server.url);
      await waitForEngine(page, 'cpu');
      await byTestId('capture-class').fill('desk');
      // The clipboard: a PNG drawn on a canvas, in a synthetic paste event's DataTransfer.
      await page.evaluate(async () => {
        const canvas = Object.assign(document.createElement('canvas'), { width: 64, height: 48 });
        const context = canvas.getContext('2d');
        context.fillStyle = '#c03';
        context.fillRect(0, 0, 64, 48);
        const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
        const data = new DataTransfer();
        data.items.add(new File([blob], 'image.png', { type: 'image/png' }));
        document.body.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
      });
      await waitForClassCounts(page, { desk: 1 });
      assert.match(await byTestId('capture-status').innerText(), /Pasted 1 picture into "desk"/);

      // Press: one picture. Hold: a burst, until the counter has moved on by three more.
      await byTestId('capture-class').fill('hand');
      await byTestId('camera-toggle').click();
      await page.waitForSelector('[data-testid="camera-toggle"][data-running="true"]');
      await page.waitForFunction(() => document.querySelector('[data-testid="capture-video"]').videoWidth > 0);
      const shoot = byTestId('capture-button');
      const box = await shoot.boundingBox();
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await page.mouse.down();
      await page.mouse.up();
      await waitForClassCounts(page, { desk: 1, hand: 1 });
      await page.mouse.down();
      await page.waitForFunction(() => Number(document.querySelector('[data-testid="capture-count"]').dataset.count) >= 4);
      await page.mouse.up();
      const captured = Number(await byTestId('capture-count').getAttribute('data-count'));
      await waitForClassCounts(page, { desk: 1, hand: captured });
      assert.ok(captured >= 4, `a held button captures a burst (${captured})`);
      // Released: no more pictures; stopping the camera hides the video.
      await byTestId('camera-toggle').click();
      assert.equal(await byTestId('capture-video').isVisible(), false);
      assert.equal(Number(await byTestId('capture-count').getAttribute('data-count')), captured);
      assert.equal(await page.locator('[data-testid="file-problem"]').count(), 0, (await problems(page)).join(' | '));

      // "New project" (once confirmed) starts from an empty page.
      page.once('dialog', (dialog) => void dialog.accept());
      await byTestId('new-project').click();
      await page.waitForFunction(() => document.querySelectorAll('[data-testid="class-row"]').length === 0);
      assert.equal(await byTestId('new-project').isVisible(), false);
    });
  });

  test('the sample project trains end to end, pauses and resumes, and the webcam tries it live', { timeout: 15 * 60_000 }, async () => {
    assert.ok(existsSync(join(DIST, 'sample', 'manifest.json')), 'the sample project is missing from the built page: run make_sample_project');
    await withPage('sample', FAKE_CAMERA, async (page, byTestId) => {
      await page.goto(server.url);
      await waitForEngine(page, 'cpu');
      await byTestId('sample-project').click();
      await waitForClassCounts(page, { brick: 12, grass: 12, gravel: 12 }, 300_000);
      assert.match(await byTestId('sample-about').innerText(), /scikit-image.*CC0/s);

      await openAdvanced(page);
      await byTestId('fine-tune-blocks').fill('0');
      await byTestId('epochs').fill('30');
      await byTestId('validation-percent').fill('25');
      await byTestId('train-button').click();
      // Pause while the backbone computes the features (the longest part): the count stops
      // moving until Resume, and the run then goes on from where it was.
      const progress = () => byTestId('feature-progress').evaluate((el) => el.value);
      await page.waitForFunction(() => document.querySelector('[data-testid="feature-progress"]').value >= 4, null, { timeout: 300_000 });
      await byTestId('pause-button').click();
      await page.waitForSelector('[data-testid="train-status"][data-paused="true"]');
      assert.match(await byTestId('train-status').innerText(), /^Paused\./);
      assert.equal(await byTestId('pause-button').innerText(), 'Resume');
      // The step in flight when Pause arrived may still report; after it, nothing moves.
      await page.waitForTimeout(3000);
      const held = await progress();
      await page.waitForTimeout(3000);
      assert.equal(await progress(), held, 'no picture is processed while paused');
      assert.ok(held < 36, `paused before the end of the features (${held})`);
      await byTestId('pause-button').click();
      await page.waitForSelector('[data-testid="train-status"]:is([data-phase="done"], [data-phase="failed"], [data-phase="stopped"])', {
        timeout: 600_000,
      });
      assert.equal(await byTestId('train-status').getAttribute('data-phase'), 'done', await byTestId('train-status').innerText());
      const metrics = await byTestId('metrics').evaluate((el) => ({ ...el.dataset }));
      console.log(`# sample project: validation accuracy ${metrics.valAccuracy} after ${metrics.epoch} epochs`);
      assert.ok(Number(metrics.valAccuracy) >= 0.8, `validation accuracy ${metrics.valAccuracy}`);

      // Live: a frame is classified again and again, with bars for the sample's classes.
      await byTestId('live-toggle').click();
      await page.waitForFunction(() => Number(document.querySelector('[data-testid="live-predictions"]').dataset.frames) >= 3, null, {
        timeout: 120_000,
      });
      const labels = await page.$$eval('[data-testid="live-predictions"] li', (items) => items.map((item) => item.dataset.label));
      assert.deepEqual([...labels].sort(), ['brick', 'grass', 'gravel']);
      // With the heatmap on, frames get their Grad-CAM of the top class too.
      await byTestId('live-heatmap-toggle').check();
      await page.waitForFunction(() => Number(document.querySelector('[data-testid="live-heatmap"]').dataset.frames) >= 2, null, {
        timeout: 180_000,
      });
      const cam = await byTestId('live-heatmap').evaluate((el) => ({ ...el.dataset, width: el.width }));
      assert.ok(['brick', 'grass', 'gravel'].includes(cam.label), JSON.stringify(cam));
      assert.equal(cam.mapWidth, '7');
      assert.equal(cam.width, 224);
      await byTestId('live-toggle').click();
      assert.equal(await byTestId('live-video').isVisible(), false, 'the camera stops');
      assert.equal(await page.evaluate(() => document.querySelector('[data-testid="live-video"]').srcObject), null);
    });
  });
});
