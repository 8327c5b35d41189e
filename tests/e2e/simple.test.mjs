// Simple by default: the page shows the pictures, one Train button and one sentence of what it
// will do (the engine's recommendation); the backbone, the backend and every setting sit under a
// collapsed "Advanced", reachable from the keyboard. On a phone-wide screen (390 px) nothing
// overflows sideways, before or after training. While training runs, the time left is shown,
// and it goes away when the run is over.
//
//   cd www && npm run build -- --mode bench && cd .. && node --test tests/e2e/simple.test.mjs

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from './support/server.mjs';
import { errorsOn, makeDataset, openAdvanced, waitForClassCounts, waitForEngine, withPage } from './support/page.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DIST = resolve(process.env.WEBTUNE_DIST ?? join(ROOT, 'www', 'dist'));

let server;
let workDir;

/** How far the page reaches past the viewport's right edge, and the widest culprit. */
async function sidewaysOverflow(page) {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    let worst = { by: 0, what: '' };
    for (const element of document.querySelectorAll('body *')) {
      const box = element.getBoundingClientRect();
      if (box.width === 0 || box.height === 0 || !element.checkVisibility()) continue;
      // Content that scrolls inside its own box is fine.
      let scrolled = false;
      for (let p = element.parentElement; p && p !== document.body; p = p.parentElement) {
        const style = getComputedStyle(p);
        if (['auto', 'scroll', 'hidden'].includes(style.overflowX)) scrolled = true;
      }
      if (scrolled) continue;
      const by = box.right - width;
      if (by > worst.by) worst = { by, what: `${element.tagName.toLowerCase()}${element.id ? `#${element.id}` : ''}.${element.className} "${element.textContent.trim().slice(0, 40)}"` };
    }
    return { page: document.documentElement.scrollWidth - width, ...worst };
  });
}

describe('the simple view', () => {
  before(async () => {
    assert.ok(existsSync(join(DIST, 'index.html')), `the built page is missing (${DIST}): run \`npm run build\` in www/`);
    server = await serveStatic(DIST);
    workDir = await mkdtemp(join(tmpdir(), 'webtune-e2e-simple-'));
  });
  after(async () => {
    await server?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test('one Train button, the recommendation in one sentence, everything else under a collapsed Advanced', { timeout: 5 * 60_000 }, async () => {
    const { dataset } = await makeDataset(await mkdtemp(join(workDir, 'plain-')), 3);
    await withPage('simple', [], async (page, byTestId) => {
      await page.goto(`${server.url}?backend=cpu`);
      await waitForEngine(page, 'cpu');
      const advanced = byTestId('advanced-settings');
      assert.equal(await advanced.evaluate((d) => d.open), false, 'Advanced starts collapsed');
      for (const hidden of ['epochs', 'learning-rate', 'fine-tune-blocks', 'backbone-select', 'backend-select']) {
        assert.equal(await byTestId(hidden).isVisible(), false, `${hidden} is under Advanced`);
      }
      assert.equal(await page.getByRole('button', { name: 'Train', exact: true }).count(), 1, 'one Train button');
      assert.match(await byTestId('train-plan').innerText(), /^Add your pictures, in at least two classes: Train then runs the recipe recommended for them\.$/);

      await byTestId('folder-input').setInputFiles(dataset);
      await waitForClassCounts(page, { blue: 3, red: 3 });
      const plan = byTestId('train-plan');
      await page.waitForFunction(() => document.querySelector('[data-testid="train-plan"]')?.textContent?.startsWith('Train will'));
      assert.equal(
        await plan.innerText(),
        "Train will fit a new classifier head on EfficientNet-Lite0's features (recommended for 6 pictures with 3 in the smallest class).",
      );
      assert.equal(await plan.getAttribute('data-unfreeze'), await byTestId('recommendation').getAttribute('data-unfreeze'));
      assert.equal(await plan.getAttribute('data-recommended'), 'true');

      // The keyboard opens Advanced: Tab to its summary, Enter.
      await page.locator('#advanced-settings > summary').focus();
      await page.keyboard.press('Enter');
      assert.equal(await advanced.evaluate((d) => d.open), true, 'Enter on the summary opens Advanced');
      assert.equal(await byTestId('epochs').isVisible(), true);
      // Choosing a number of blocks there changes the sentence, and the recommendation comes back.
      await byTestId('fine-tune-blocks').fill('2');
      assert.match(await plan.innerText(), /then fine-tune the last 2 blocks at a lower learning rate \(as you chose under Advanced\)\.$/);
      assert.equal(await plan.getAttribute('data-recommended'), 'false');
      await byTestId('use-recommendation').click();
      assert.match(await plan.innerText(), /\(recommended for 6 pictures/);
      await page.keyboard.press('Escape');
      assert.equal(await page.locator('[data-testid="error"]').count(), 0, await errorsOn(page));
    });
  });

  test('at 390 px nothing overflows sideways; training shows the time left, which ends with the run', { timeout: 10 * 60_000 }, async () => {
    const { dataset } = await makeDataset(await mkdtemp(join(workDir, 'phone-')), 6);
    await withPage('phone', [], async (page, byTestId) => {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(`${server.url}?backend=cpu`);
      await waitForEngine(page, 'cpu');
      await byTestId('folder-input').setInputFiles(dataset);
      await waitForClassCounts(page, { blue: 6, red: 6 });
      let overflow = await sidewaysOverflow(page);
      assert.ok(overflow.page <= 0 && overflow.by <= 1, `closed Advanced overflows: ${JSON.stringify(overflow)}`);
      await openAdvanced(page);
      await page.locator('#advanced > summary').click();
      overflow = await sidewaysOverflow(page);
      assert.ok(overflow.page <= 0 && overflow.by <= 1, `open Advanced overflows: ${JSON.stringify(overflow)}`);

      // Every head epoch runs (patience 0), so the run has several steps to estimate from.
      await byTestId('epochs').fill('8');
      await byTestId('head-patience').fill('0');
      await byTestId('validation-percent').fill('25');
      // Every change of the time-left line while the run goes.
      await page.evaluate(() => {
        const eta = document.querySelector('[data-testid="train-eta"]');
        window.etaSeen = [];
        new MutationObserver(() => {
          if (!eta.hidden) window.etaSeen.push({ text: eta.textContent, ms: Number(eta.dataset.ms), untimed: Number(eta.dataset.untimed) });
        }).observe(eta, { attributes: true, childList: true, characterData: true, subtree: true });
      });
      await byTestId('train-button').click();
      await page.waitForSelector('[data-testid="train-status"]:is([data-phase="done"], [data-phase="failed"])', { timeout: 300_000 });
      assert.equal(await byTestId('train-status').getAttribute('data-phase'), 'done', await byTestId('train-status').innerText());

      const seen = await page.evaluate(() => window.etaSeen);
      assert.ok(seen.length > 0, 'the time left was shown during training');
      const timed = seen.filter((s) => /^About \d+ (s|min) left/.test(s.text));
      assert.ok(timed.length > 0, `an estimate in seconds or minutes: ${JSON.stringify(seen)}`);
      // Once the head's epochs are timed, nothing is left unestimated (head only on 12 pictures).
      assert.ok(seen.some((s) => s.untimed === 0), `every phase ahead was timed at some point: ${JSON.stringify(seen)}`);
      // Over: the line is gone.
      assert.equal(await byTestId('train-eta').isVisible(), false, 'the time left goes away when the run is over');

      overflow = await sidewaysOverflow(page);
      assert.ok(overflow.page <= 0 && overflow.by <= 1, `after training the page overflows: ${JSON.stringify(overflow)}`);
      assert.equal(await page.locator('[data-testid="error"]').count(), 0, await errorsOn(page));
    });
  });
});
