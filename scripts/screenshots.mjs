// Screenshots of the page's main states, for docs/ and the README, taken in headless Chromium on
// the built page (www/dist, with the sample project in it) and the CPU path:
//
//   node scripts/screenshots.mjs [OUT_DIR]        # default: docs/
//
// The flow: the empty page; the sample project loaded, with one brick picture filed under
// "grass" on purpose; training; the results; the label check (which should name that picture);
// a Grad-CAM heatmap on a tried picture; the page at a phone's width. Each state is one PNG.
// tests/e2e/screenshots.test.mjs runs this into a temporary folder, so the script cannot rot.

import { mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from '../tests/e2e/support/server.mjs';
import { errorsOn, waitForClassCounts, waitForEngine, withPage } from '../tests/e2e/support/page.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The picture put in the wrong class before training. */
export const MISFILED = 'brick-00.jpg';

/** Takes the screenshots into `out`; resolves to the files written, in order. */
export async function takeScreenshots(out, dist = join(ROOT, 'www/dist')) {
  if (!existsSync(join(dist, 'sample', 'manifest.json'))) {
    throw new Error(`${dist} has no sample project: run \`bash scripts/test.sh\` once (or scripts/common.sh make_sample_project, then \`npm run build\` in www/)`);
  }
  await mkdir(out, { recursive: true });
  const server = await serveStatic(dist);
  const written = [];
  try {
    await withPage('screenshots', [], async (page, byTestId) => {
      const shot = async (name, options = {}) => {
        const path = join(out, `${name}.png`);
        await page.screenshot({ path, ...options });
        written.push(path);
      };
      await page.setViewportSize({ width: 1280, height: 900 });
      await page.goto(`${server.url}?backend=cpu`);
      await waitForEngine(page, 'cpu');
      await shot('1-start');

      await byTestId('sample-project').click();
      await waitForClassCounts(page, { brick: 12, grass: 12, gravel: 12 }, 300_000);
      const misfiled = page.locator(`[data-label="brick"] [data-testid="thumb"][title$="${MISFILED}"]`).first();
      const thumb = (await misfiled.count()) ? misfiled : page.locator('[data-label="brick"] [data-testid="thumb"]').first();
      await thumb.locator('[data-testid="move-picture"]').selectOption('grass');
      await waitForClassCounts(page, { brick: 11, grass: 13, gravel: 12 });
      await shot('2-classes');

      await byTestId('train-button').click();
      await page.waitForFunction(() => document.querySelectorAll('[data-testid="epoch-row"]').length >= 3, null, { timeout: 600_000 });
      await shot('3-training');
      await page.waitForSelector('[data-testid="train-status"]:is([data-phase="done"], [data-phase="failed"], [data-phase="stopped"])', {
        timeout: 900_000,
      });
      if ((await byTestId('train-status').getAttribute('data-phase')) !== 'done') {
        throw new Error(`training did not finish: ${await byTestId('train-status').innerText()} ${await errorsOn(page)}`);
      }
      await byTestId('evaluation').scrollIntoViewIfNeeded();
      await shot('4-results');

      await byTestId('check-labels').click();
      await page.waitForSelector('[data-testid="suspects"], [data-testid="duplicates"]', { timeout: 300_000 }).catch(() => {});
      await byTestId('predict-input').setInputFiles(join(dist, 'sample', 'gravel', 'gravel-00.jpg'));
      const prediction = page.locator('[data-testid="prediction"]').first();
      await prediction.locator('[data-testid="heatmap-toggle"]').click({ timeout: 120_000 });
      await prediction.locator('[data-testid="heatmap"]').waitFor({ timeout: 120_000 });
      await byTestId('label-check').scrollIntoViewIfNeeded();
      await shot('5-labels');
      await prediction.scrollIntoViewIfNeeded();
      await shot('6-why');

      await page.setViewportSize({ width: 390, height: 844 });
      await page.evaluate(() => window.scrollTo(0, 0));
      await shot('7-phone');
    });
  } finally {
    await server.close();
  }
  return written;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = resolve(process.argv[2] ?? join(ROOT, 'docs'));
  const files = await takeScreenshots(out);
  for (const file of files) console.log(file);
}
