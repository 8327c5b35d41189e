// What the browser tests share: the synthetic class folders, a fresh browser per test, and
// waiting for the page's engine and class list.

import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { launchChromium } from './chromium.mjs';
import { colourPicture } from './png.mjs';

export const LABELS = ['blue', 'red'];

/** Writes red/ and blue/ class folders (plus two bad files) and two held-out pictures. */
export async function makeDataset(dir, perClass) {
  const dataset = join(dir, 'pictures');
  let seed = 1;
  for (const label of LABELS) {
    await mkdir(join(dataset, label), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      await writeFile(join(dataset, label, `${label}-${i}.png`), colourPicture(label, seed++));
    }
  }
  await writeFile(join(dataset, 'blue', 'broken.png'), Buffer.from('this is not a PNG file, just garbage bytes \x00\x01\x02'));
  await writeFile(join(dataset, 'red', 'notes.txt'), 'photos taken in the garden\n');

  const heldOut = join(dir, 'held-out');
  await mkdir(heldOut, { recursive: true });
  const pictures = {};
  for (const label of LABELS) {
    pictures[label] = join(heldOut, `test-${label}.png`);
    await writeFile(pictures[label], colourPicture(label, 1000 + seed++));
  }
  return { dataset, pictures };
}

/** Runs `use(page, byTestId)` in a fresh browser; prints the browser's log when it fails. */
export async function withPage(name, extraFlags, use) {
  const browser = await launchChromium(extraFlags);
  const log = [];
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    page.on('console', (message) => log.push(`[console.${message.type()}] ${message.text()}`));
    page.on('pageerror', (error) => log.push(`[pageerror] ${error.message}`));
    page.on('crash', () => log.push('[page crashed]'));
    await use(page, (id) => page.locator(`[data-testid="${id}"]`));
  } catch (error) {
    console.log(`# ${name}: browser log (last 60 lines):\n${log.slice(-60).join('\n')}`);
    throw error;
  } finally {
    await browser.close();
  }
}

/** Waits for the engine to be ready on `backend`. */
export async function waitForEngine(page, backend, timeout = 180_000) {
  await page
    .waitForFunction(
      (backend) => {
        const label = document.querySelector('[data-testid="backend-label"]');
        if (label?.dataset.status === 'failed') return true;
        return label?.dataset.status === 'ready' && label.dataset.backend === backend;
      },
      backend,
      { timeout },
    )
    .catch(async (error) => {
      throw new Error(`the engine never got ready on ${backend}: ${await errorsOn(page)}\n${error.message}`);
    });
  assert.equal(await page.locator('[data-testid="backend-label"]').getAttribute('data-status'), 'ready', await errorsOn(page));
}

/**
 * Waits until the class rows show exactly `counts` ({label: count}), nothing is being read and
 * the browser has stored every change (so that a reload finds them).
 */
export async function waitForClassCounts(page, counts, timeout = 120_000) {
  await page
    .waitForFunction(
      (counts) => {
        const adding = document.querySelector('[data-testid="add-status"]')?.getAttribute('data-adding');
        const storing = document.querySelector('[data-testid="library-status"]')?.getAttribute('data-storing');
        if ((storing ?? '0') !== '0') return false;
        const shown = Object.fromEntries(
          [...document.querySelectorAll('[data-testid="class-row"]')].map((row) => [
            row.getAttribute('data-label'),
            Number(row.querySelector('[data-count]')?.getAttribute('data-count')),
          ]),
        );
        return adding === '0' && JSON.stringify(shown, Object.keys(shown).sort()) === JSON.stringify(counts, Object.keys(counts).sort());
      },
      counts,
      { timeout },
    )
    .catch(async (error) => {
      throw new Error(`class counts never became ${JSON.stringify(counts)}: ${await classesOn(page)}; ${await errorsOn(page)}\n${error.message}`);
    });
}

export async function errorsOn(page) {
  const errors = await page.$$eval('[data-testid="error"]', (items) => items.map((item) => item.textContent));
  return errors.length ? `page errors: ${errors.join(' | ')}` : 'no page errors shown';
}

export async function classesOn(page) {
  return page.$$eval('[data-testid="class-row"]', (rows) => rows.map((row) => row.textContent).join(', '));
}

/** Opens the "Advanced" settings, collapsed by default, as a user would, so their fields can be used. */
export async function openAdvanced(page) {
  const details = page.locator('[data-testid="advanced-settings"]');
  if (!(await details.evaluate((d) => d.open))) await details.locator(':scope > summary').click();
}

/** Trains with the page's recipe and `epochs` head epochs (set under Advanced), and expects it to finish. */
export async function trainHeadEpochs(page, epochs) {
  await openAdvanced(page);
  await page.locator('[data-testid="epochs"]').fill(String(epochs));
  await trainUntilDone(page);
}

/** Clicks Train, waits for the run to start and to end, and checks that it ended done (the status text says why not). */
export async function trainUntilDone(page) {
  await page.locator('[data-testid="train-button"]').click();
  await page.waitForSelector('[data-testid="train-status"]:not([data-phase="idle"]):not([data-phase="failed"])', { timeout: 60_000 });
  await page.waitForSelector('[data-testid="train-status"]:is([data-phase="done"], [data-phase="failed"])', { timeout: 300_000 });
  const status = page.locator('[data-testid="train-status"]');
  assert.equal(await status.getAttribute('data-phase'), 'done', await status.innerText());
}

/** A short run of both phases, set under Advanced: 2 head epochs, a 25 % validation split, and `fineEpochs` epochs of one fine-tuned block on one view a picture. */
export async function shortPhaseTwo(page, fineEpochs) {
  const byTestId = (id) => page.locator(`[data-testid="${id}"]`);
  await openAdvanced(page);
  await byTestId('epochs').fill('2');
  await byTestId('validation-percent').fill('25');
  await byTestId('fine-tune-blocks').fill('1');
  if (!(await byTestId('fine-epochs').isVisible())) await page.locator('#advanced > summary').click();
  await byTestId('fine-epochs').fill(String(fineEpochs));
  await byTestId('views-per-image').fill('1');
}

/** The picture records in the page's IndexedDB library: how each is kept. */
export function storedPictures(page) {
  return page.evaluate(async () => {
    const db = await new Promise((resolve, reject) => {
      const open = indexedDB.open('webtune');
      open.onsuccess = () => resolve(open.result);
      open.onerror = () => reject(open.error);
    });
    const values = await new Promise((resolve, reject) => {
      const all = db.transaction('library').objectStore('library').getAll();
      all.onsuccess = () => resolve(all.result);
      all.onerror = () => reject(all.error);
    });
    db.close();
    const pictures = values.filter((value) => value && value.bytes instanceof Blob);
    return Promise.all(
      pictures.map(async ({ compact, type, bytes }) => {
        const head = new Uint8Array(await bytes.slice(0, 3).arrayBuffer());
        return { compact, type, jpeg: head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff, size: bytes.size };
      }),
    );
  });
}

/**
 * Stands in for the dialog of `showDirectoryPicker`, which the test browser cannot drive: the
 * page copies the folder `dir` (fetched below `baseUrl`, where the test's server mounts it) into
 * its origin-private file system, empty folders too, and `showDirectoryPicker` then resolves to
 * that copy, a real directory handle the page walks as it would walk a folder on disk. Resolves
 * once the copy is done.
 */
export async function offerFolder(page, baseUrl, dir) {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  const below = (entry) => relative(dir, join(entry.parentPath, entry.name)).split(sep).join('/');
  const files = entries.filter((entry) => entry.isFile()).map(below);
  const folders = entries.filter((entry) => entry.isDirectory()).map(below);
  await page.evaluate(
    async ({ baseUrl, files, folders }) => {
      const root = await navigator.storage.getDirectory();
      await root.removeEntry('offered', { recursive: true }).catch(() => {});
      const folder = await root.getDirectoryHandle('offered', { create: true });
      const folderAt = async (parts) => {
        let at = folder;
        for (const part of parts) at = await at.getDirectoryHandle(part, { create: true });
        return at;
      };
      for (const path of folders) await folderAt(path.split('/'));
      for (const path of files) {
        const parts = path.split('/');
        const response = await fetch(new URL(parts.map(encodeURIComponent).join('/'), baseUrl));
        if (!response.ok) throw new Error(`${path}: ${response.status}`);
        const file = await (await folderAt(parts.slice(0, -1))).getFileHandle(parts.at(-1), { create: true });
        await response.body.pipeTo(await file.createWritable());
      }
    },
    { baseUrl, files, folders },
  );
  await offerCopiedFolder(page);
}

/** Makes `showDirectoryPicker` resolve to the folder `offerFolder` copied (it stays across reloads). */
export async function offerCopiedFolder(page) {
  await page.evaluate(async () => {
    const folder = await (await navigator.storage.getDirectory()).getDirectoryHandle('offered');
    window.showDirectoryPicker = async () => folder;
  });
}
