// The settings form refuses exactly what the engine refuses. Both read one table: the engine's
// `SETTINGS` (src/recipe.rs), generated into www/src/engine/generated.ts. The engine's side is
// `recipe::tests::validation_refuses_exactly_outside_each_declared_range`; this is the form's:
// for every setting with a range, the value on each bound is accepted exactly when the bound is
// inclusive, a step beyond is refused with the range in the message, and the default is shown.
//
//   cd www && npm run build && cd .. && node --test tests/e2e/settings.test.mjs

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from './support/server.mjs';
import { openAdvanced, waitForEngine, withPage } from './support/page.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DIST = resolve(process.env.WEBTUNE_DIST ?? join(ROOT, 'www', 'dist'));
const GENERATED = join(ROOT, 'www', 'src', 'engine', 'generated.ts');

/** A constant of the generated file (plain JSON after its declaration). */
async function generated(name) {
  const text = await readFile(GENERATED, 'utf8');
  const start = text.indexOf(`export const ${name}`);
  const json = text.slice(text.indexOf('=', start) + 1, text.indexOf(';\n', start));
  return JSON.parse(json);
}

const valueAt = (object, key) => key.split('.').reduce((v, part) => v[part], object);

let server;

describe('the settings form', () => {
  before(async () => {
    assert.ok(existsSync(join(DIST, 'index.html')), `the built page is missing (${DIST}): run \`npm run build\` in www/`);
    server = await serveStatic(DIST);
  });
  after(async () => server?.close());

  test('refuses exactly what the engine refuses, with the defaults the engine has', { timeout: 5 * 60_000 }, async () => {
    const settings = await generated('SETTINGS');
    const defaults = await generated('DEFAULT_RECIPE');
    await withPage('settings', [], async (page) => {
      await page.goto(`${server.url}?backend=cpu`);
      await waitForEngine(page, 'cpu');
      // Collapsed by default; every field's one-line help is the engine's, with its default and range.
      assert.equal(await page.locator('[data-testid="advanced-settings"]').evaluate((d) => d.open), false);
      await openAdvanced(page);
      await page.locator('#advanced > summary').click();
      const units = Number(await page.locator('[data-testid="backbone-status"]').getAttribute('data-max-unfreeze'));
      assert.ok(units > 0);
      for (const setting of settings) {
        const input = page.locator(`[data-setting="${setting.key}"]`);
        assert.equal(await input.count(), 1, `a form field for ${setting.key}`);
        const help = await page.locator(`[data-testid="setting-help"][data-help-for="${setting.key}"]`).innerText();
        assert.ok(help.startsWith(setting.help), `${setting.key}'s help line says the engine's help: ${help}`);
        assert.match(help, setting.kind === 'boolean' ? /on by default: (yes|no)/ : /default/, `${setting.key}'s help line says its default`);
        if (setting.kind === 'boolean') {
          assert.equal(await input.isChecked(), valueAt(defaults, setting.key), `${setting.key} default`);
          continue;
        }
        const scale = setting.displayScale;
        const shown = (v) => String(Number((v * scale).toPrecision(12)));
        if (setting.key !== 'unfreeze') {
          assert.equal(await input.inputValue(), shown(valueAt(defaults, setting.key)), `${setting.key} default`);
        }
        const step = setting.kind === 'integer' ? 1 : 1e-6;
        const max = setting.maxIsUnits ? { value: units, inclusive: true } : setting.max;
        for (const [bound, outward] of [[setting.min, -step], [max, step]]) {
          if (!bound) continue;
          await input.fill(shown(bound.value));
          const on = await input.evaluate((el) => el.checkValidity());
          assert.equal(on, bound.inclusive, `${setting.key} at ${bound.value}: accepted only if the bound is inclusive`);
          await input.fill(shown(bound.value + outward));
          const beyond = await input.evaluate((el) => ({ valid: el.checkValidity(), message: el.validationMessage }));
          assert.equal(beyond.valid, false, `${setting.key} at ${bound.value + outward} must be refused`);
        }
        await input.fill(setting.key === 'unfreeze' ? '0' : shown(valueAt(defaults, setting.key)));
        assert.equal(await input.evaluate((el) => el.checkValidity()), true, `${setting.key} valid again`);
      }
    });
  });
});
