// The built folder as anyone would host it: served by a real nginx that knows the page's
// headers only from the snippet the build writes (dist/nginx.conf), the main flow runs: the
// page is cross-origin isolated, the wasm comes as application/wasm, hashed files are cached
// for good and the page itself is revalidated, pictures are added, a head is trained, pictures
// are classified and the model downloads. Then offline use, on a server that applies only
// dist/_headers (Netlify, Cloudflare Pages): after the first visit the service worker holds the
// page, the wasm and the weights; a new deployment is offered as a reload; with the server gone
// and the browser offline, a reload still gives the cross-origin isolated page, the stored
// pictures, a working engine, training and predictions.
//
//   cd www && npm run build && cd .. && node --test tests/e2e/hosting.test.mjs
//
// Needs nginx: WEBTUNE_NGINX, as scripts/test.sh sets it, or /usr/sbin/nginx.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LABELS, errorsOn, makeDataset, openAdvanced, trainUntilDone, waitForClassCounts, waitForEngine, withPage } from './support/page.mjs';
import { serveWithHeadersFile, serveWithNginx } from './support/hosts.mjs';
import { parseSafetensors } from './support/safetensors.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DIST = resolve(process.env.WEBTUNE_DIST ?? join(ROOT, 'www', 'dist'));
const PAGE_HEADERS = JSON.parse(await readFile(join(ROOT, 'www', 'headers.json'), 'utf8'));
const IMMUTABLE = 'public, max-age=31536000, immutable';

let workDir;

describe('the built page on a static host', () => {
  before(async () => {
    for (const file of ['index.html', 'sw.js', '_headers', 'nginx.conf']) {
      assert.ok(existsSync(join(DIST, file)), `${DIST}/${file} is missing: run \`npm run build\` in www/`);
    }
    workDir = await mkdtemp(join(tmpdir(), 'webtune-e2e-hosting-'));
  });

  after(async () => {
    if (workDir && !process.env.WEBTUNE_E2E_KEEP) await rm(workDir, { recursive: true, force: true });
  });

  test('nginx with the generated snippet serves a working, cross-origin isolated page', { timeout: 10 * 60_000 }, async () => {
    const { dataset, pictures } = await makeDataset(await mkdtemp(join(workDir, 'nginx-')), 3);
    const server = await serveWithNginx(DIST);
    try {
      await withPage('nginx', [], async (page, byTestId) => {
        const responses = [];
        page.on('response', (response) => responses.push(response));
        const navigation = await page.goto(`${server.url}?backend=cpu`);
        assert.equal(await page.evaluate(() => crossOriginIsolated), true, 'the page must be cross-origin isolated');
        await checkPageHeaders(navigation, 'no-cache');
        await waitForEngine(page, 'cpu');

        // What the worker fetched: the wasm module (hashed, under assets/) and the weights.
        const wasm = responses.find((r) => /\/assets\/[^/]+\.wasm$/.test(r.url()));
        assert.ok(wasm, `no wasm response among ${responses.map((r) => r.url()).join(', ')}`);
        assert.equal(wasm.headers()['content-type'], 'application/wasm');
        await checkPageHeaders(wasm, IMMUTABLE);
        const script = responses.find((r) => /\/assets\/main-[^/]+\.js$/.test(r.url()));
        await checkPageHeaders(script, IMMUTABLE);
        const weights = responses.find((r) => r.url().endsWith('/weights/efficientnet_lite0.safetensors'));
        assert.ok(weights, 'the weights were fetched');
        await checkPageHeaders(weights, 'no-cache');

        await byTestId('folder-input').setInputFiles(dataset);
        await waitForClassCounts(page, { blue: 3, red: 3 });
        await trainAndTry(page, byTestId, pictures, 3);
        const [download] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), byTestId('download-button').click()]);
        const model = parseSafetensors(await readFile(await download.path()));
        assert.deepEqual(JSON.parse(model.metadata.labels), LABELS);
        assert.equal(await page.locator('[data-testid="error"]').count(), 0, await errorsOn(page));
      });
    } catch (error) {
      console.log(`# nginx log:\n${server.log()}`);
      throw error;
    } finally {
      await server.close();
    }
  });

  test('works offline after the first visit, and offers a new deployment as a reload', { timeout: 10 * 60_000 }, async (t) => {
    const { dataset, pictures } = await makeDataset(await mkdtemp(join(workDir, 'offline-')), 2);
    // sw.js as the build wrote it, until the test deploys "a new version" (the same files with
    // a changed service worker, which is how the browser sees any new build).
    let version = '';
    let server = await serveWithHeadersFile(DIST, { replace: { '/sw.js': (text) => text + version } });
    const { port } = server;
    try {
      await withPage('offline', [], async (page, byTestId) => {
        await t.test('first visit: the service worker installs with the page, the wasm and the weights', async () => {
          await page.goto(server.url);
          assert.equal(await page.evaluate(() => crossOriginIsolated), true);
          await waitForEngine(page, 'cpu');
          // Installed means precached: the worker activates only once every file is stored.
          await page.waitForFunction(() => navigator.serviceWorker.controller !== null, null, { timeout: 120_000 });
          const cached = await page.evaluate(async () => {
            const urls = [];
            for (const name of await caches.keys()) {
              for (const request of await (await caches.open(name)).keys()) urls.push(new URL(request.url).pathname);
            }
            return urls;
          });
          for (const pattern of [/^\/index\.html$/, /^\/assets\/main-[^/]+\.js$/, /^\/assets\/worker-[^/]+\.js$/, /^\/assets\/[^/]+\.wasm$/, /^\/weights\/efficientnet_lite0\.safetensors$/]) {
            assert.ok(cached.some((url) => pattern.test(url)), `${pattern} is not cached: ${cached.join(', ')}`);
          }
          assert.ok(!cached.some((url) => /bench/.test(url)), `the benchmark page is not for offline use: ${cached.join(', ')}`);
          await byTestId('folder-input').setInputFiles(dataset);
          await waitForClassCounts(page, { blue: 2, red: 2 });
        });

        await t.test('a new deployment waits, and the page offers the reload that switches to it', async () => {
          // The browser looks for a new service worker when the page is opened again.
          version = '\n// a new deployment\n';
          await page.reload();
          await page.waitForSelector('[data-testid="update-ready"]', { timeout: 120_000 });
          assert.match(await byTestId('update-ready').innerText(), /^A new version of webtune is ready\./);
          // Waiting, not taken over: the open page keeps its engine until the user reloads.
          assert.equal(await page.evaluate(async () => (await navigator.serviceWorker.getRegistration()).waiting !== null), true);
          await waitForEngine(page, 'cpu');
          await page.evaluate(() => (window.__beforeUpdate = true));
          await Promise.all([page.waitForEvent('load', { timeout: 60_000 }), byTestId('update-reload').click()]);
          assert.equal(await page.evaluate(() => window.__beforeUpdate), undefined, 'the page reloaded');
          assert.equal(await page.evaluate(() => navigator.serviceWorker.controller !== null), true);
          assert.equal(await page.evaluate(async () => (await navigator.serviceWorker.getRegistration()).waiting), null);
          await waitForEngine(page, 'cpu');
          await waitForClassCounts(page, { blue: 2, red: 2 });
          assert.equal(await byTestId('update-ready').count(), 0, 'nothing left to update');
        });

        await t.test('offline: the page, the engine, the pictures, training and predictions', async () => {
          await server.close();
          server = null;
          await page.context().setOffline(true);
          const navigation = await page.reload();
          assert.equal(navigation.fromServiceWorker(), true, 'the page came from the service worker');
          assert.equal(await page.evaluate(() => crossOriginIsolated), true, 'the cached page keeps its headers');
          await checkPageHeaders(navigation, 'no-cache');
          await waitForEngine(page, 'cpu');
          await waitForClassCounts(page, { blue: 2, red: 2 });
          await trainAndTry(page, byTestId, pictures, 2);
          // Another query string: the same cached page.
          await page.goto(`http://127.0.0.1:${port}/?backend=cpu`);
          assert.equal(await page.evaluate(() => crossOriginIsolated), true);
          await waitForEngine(page, 'cpu');
          assert.equal(await page.locator('[data-testid="error"]').count(), 0, await errorsOn(page));
        });
      });
    } finally {
      await server?.close();
    }
  });
});

/** The page's headers from www/headers.json, and `cache` as Cache-Control. */
async function checkPageHeaders(response, cache) {
  const headers = await response.allHeaders();
  for (const [name, value] of Object.entries(PAGE_HEADERS)) {
    assert.equal(headers[name.toLowerCase()], value, `${name} of ${response.url()}`);
  }
  assert.equal(headers['cache-control'], cache, `Cache-Control of ${response.url()}`);
}

/** Trains the head for `epochs` and classifies the two held-out pictures on the page. */
async function trainAndTry(page, byTestId, pictures, epochs) {
  await openAdvanced(page);
  await byTestId('epochs').fill(String(epochs));
  await trainUntilDone(page);
  assert.equal(await page.locator('[data-testid="epoch-row"]').count(), epochs);
  await byTestId('predict-input').setInputFiles([pictures.red, pictures.blue]);
  await page.waitForFunction(
    () => {
      const items = [...document.querySelectorAll('[data-testid="prediction"]')];
      return items.length === 2 && items.every((item) => item.dataset.topLabel || item.dataset.error);
    },
    null,
    { timeout: 120_000 },
  );
  const labels = await page.$$eval('[data-testid="prediction"]', (items) => items.map((item) => item.dataset.topLabel ?? `error: ${item.dataset.error}`));
  for (const label of labels) assert.ok(LABELS.includes(label), `prediction: ${label}`);
}
