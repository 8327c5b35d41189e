// Browser tests of hostile and unusual input (issue 12, the page's side): a corpus made here
// (support/hostile.mjs; nothing checked in) dropped beside good pictures as a folder, as zips and
// as backbone weights; the same picture twice reported; and every request of a whole visit
// recorded, none of which may leave the page's origin.
//
//   cd www && npm run build -- --mode bench && cd .. && node --test tests/e2e/hostile.test.mjs

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from './support/server.mjs';
import { CHROMIUM, launchChromium } from './support/chromium.mjs';
import { chunk, colourPicture } from './support/png.mjs';
import { errorsOn, makeDataset, shortPhaseTwo, storedPictures, trainHeadEpochs, trainUntilDone, waitForClassCounts, waitForEngine } from './support/page.mjs';
import {
  EMPTY_ZIP,
  SVG,
  browserEncoded,
  cmykJpeg,
  exportWith,
  gif,
  headerOnlyJpeg,
  hostilePickles,
  jpegVariant,
  lieAboutSizes,
  lyingSafetensors,
  markEncrypted,
  pngBombs,
  unusualPngs,
  withExifOrientation,
  zipOf,
} from './support/hostile.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DIST = resolve(process.env.WEBTUNE_DIST ?? join(ROOT, 'www/dist'));

let server;
let workDir;

/**
 * A fresh browser context; `use(page, byTestId, context, log)`. The test fails on an uncaught
 * page error, a crash, or a console error, with the browser's log.
 */
async function withWatchedPage(name, use, contextOptions = {}, extraFlags = []) {
  const browser = await launchChromium(extraFlags);
  const log = [];
  const failures = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1200, height: 900 }, ...contextOptions });
    const page = await context.newPage();
    page.on('console', (message) => {
      log.push(`[console.${message.type()}] ${message.text()}`);
      if (message.type() === 'error') failures.push(`console error: ${message.text()}`);
    });
    page.on('pageerror', (error) => failures.push(`uncaught: ${error.message}`));
    page.on('crash', () => failures.push('the page crashed'));
    await use(page, (id) => page.locator(`[data-testid="${id}"]`), context, log);
    assert.deepEqual(failures, [], 'no page crash, uncaught error or console error');
  } catch (error) {
    console.log(`# ${name}: browser log (last 60 lines):\n${log.slice(-60).join('\n')}`);
    throw error;
  } finally {
    await browser.close();
  }
}

async function problemsOn(page) {
  return page.$$eval('[data-testid="file-problem"]', (items) =>
    Object.fromEntries(items.map((item) => [item.getAttribute('data-path'), item.textContent])),
  );
}

/**
 * An HTTP proxy that answers every request with 403 and remembers it: Chromium sends it every
 * request for a host other than the loopback (from the page, its workers, the service worker or
 * the browser itself), so nothing that should not leave the machine goes unseen, whatever the
 * test driver reports.
 */
/** Chromium's own services (autofill, sign-in, updates) that the common flags leave on. */
const QUIET_BROWSER = [
  '--disable-features=AutofillServerCommunication,SigninInterceptBubble,MediaRouter,OptimizationHints,Translate',
  '--disable-default-apps',
  '--disable-domain-reliability',
  '--disable-client-side-phishing-detection',
  '--no-pings',
  '--disable-sync',
  '--no-service-autorun',
];

/**
 * Hosts of Chromium's own services that no flag turns off here (component updates, its clock,
 * sign-in): seen with the proxy on every run, from the browser process, whatever the page does.
 * A request of the page or its workers to them would still be caught by the recording of the
 * page's requests (and refused by its CSP).
 */
const BROWSER_SERVICES = new Set(['update.googleapis.com', 'clients2.google.com', 'accounts.google.com']);

async function recordingProxy() {
  const seen = [];
  const server = createServer((request, response) => {
    if (!BROWSER_SERVICES.has(new URL(request.url).hostname)) seen.push(`${request.method} ${request.url}`);
    response.writeHead(403).end();
  });
  server.on('connect', (request, socket) => {
    if (!BROWSER_SERVICES.has(request.url.replace(/:\d+$/, ''))) seen.push(`CONNECT ${request.url}`);
    socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
  });
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  return {
    flags: [`--proxy-server=http://127.0.0.1:${server.address().port}`, ...QUIET_BROWSER],
    seen,
    close: () => new Promise((done) => {
      server.close(done);
      server.closeAllConnections();
    }),
  };
}

/**
 * An engine's WebAssembly memory may grow to at most this while the corpus is read (it only grows:
 * it is the engine's peak). The engine checks declared sizes before it allocates
 * (tests/hostile_inputs.rs holds each reader to 96 MB); the rest is the backbone, its weights
 * and training.
 */
const ENGINE_MEMORY_BUDGET = 512 << 20;

/**
 * Notes engines' memory after each step, prints them, and checks the budget: the running engine's
 * (as the page shows it, in 16 MB steps), and for a refused weights file that of the engine that
 * tried it beside the running one (exact, from the refusal).
 */
async function engineMemoryTracker(page, byTestId) {
  const notes = [];
  const bytes = async (testId) => Number(await byTestId(testId).getAttribute('data-memory-bytes'));
  return {
    async note(when) {
      notes.push([when, await bytes('backend-label')]);
    },
    async noteRefusing(name) {
      notes.push([`reading ${name}`, await bytes('backbone-error')]);
    },
    check() {
      const mb = (b) => `${(b / 2 ** 20).toFixed(0)} MB`;
      console.log(`# engine memory: ${notes.map(([when, b]) => `${when} ${mb(b)}`).join('; ')}`);
      assert.ok(notes.every(([, b]) => b > 0), 'every engine told its memory');
      const peak = Math.max(...notes.map(([, b]) => b));
      assert.ok(peak < ENGINE_MEMORY_BUDGET, `an engine's memory peaked at ${mb(peak)}, over ${mb(ENGINE_MEMORY_BUDGET)}`);
    },
  };
}

describe('hostile input in the page', () => {
  before(async () => {
    assert.ok(existsSync(CHROMIUM), `Chromium not found at ${CHROMIUM}`);
    assert.ok(existsSync(join(DIST, 'index.html')), `the built page is missing (${DIST}/index.html)`);
    server = await serveStatic(DIST);
    workDir = await mkdtemp(join(tmpdir(), 'webtune-hostile-'));
  });

  after(async () => {
    await server?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test('a corpus of bad files beside good pictures: each listed with its reason, the rest kept, the engine alive', { timeout: 12 * 60_000 }, async () => {
    await withWatchedPage('corpus', async (page, byTestId) => {
      await page.goto(server.url);
      await waitForEngine(page, 'cpu');
      const jpeg = await browserEncoded(page, 'image/jpeg');
      const webp = await browserEncoded(page, 'image/webp');
      const png = colourPicture('red', 7);
      const gifBytes = gif(8, 4, [new Array(32).fill(0), new Array(32).fill(2)]);

      // Refused, with (part of) the engine's reason.
      const bad = {
        'red/cut.png': [png.subarray(0, png.length >> 1), /truncated/],
        'red/header.png': [png.subarray(0, 33), /truncated/],
        'red/cut.jpg': [jpeg.subarray(0, Math.floor(jpeg.length * 0.6)), /truncated/],
        'red/header.jpg': [headerOnlyJpeg(jpeg), /truncated/],
        'red/scan.jpg': [jpegVariant(jpeg, 0xc1, 12), /a 12-bit JPEG \(only 8 bits a sample are read\)/],
        'red/lossless.jpg': [jpegVariant(jpeg, 0xc3, 8), /a lossless JPEG, which this decoder does not read/],
        'red/cut.gif': [gifBytes.subarray(0, gifBytes.length >> 1), /truncated or corrupt/],
        'red/header.gif': [gifBytes.subarray(0, 13), /truncated or corrupt/],
        'red/cut.webp': [webp.subarray(0, webp.length >> 1), /truncated or corrupt/],
        'red/header.webp': [webp.subarray(0, 30), /truncated or corrupt/],
        'red/bomb.png': [pngBombs()['bomb.png'], /image too large/],
        'red/wide.png': [pngBombs()['wide.png'], /image too elongated/],
        'red/tall.png': [pngBombs()['tall.png'], /image too elongated/],
        'blue/drawing.svg': [SVG, /SVG/],
        'blue/IMG_0001.HEIC': [Buffer.from('\0\0\0\x18ftypheic\0\0\0\0mif1heic\0\0\0\0', 'latin1'), /HEIC\/HEIF photo/],
        'blue/scan.tif': [Buffer.from('II*\0\x08\0\0\0\0\0\0\0\0\0', 'latin1'), /Tiff image/],
        'blue/notes.jpg': [Buffer.from('these are my notes, not a photo\n'), /this is text/],
        'blue/empty.jpg': [Buffer.alloc(0), /empty file/],
      };
      // Unusual but valid: added.
      const unusual = {
        ...Object.fromEntries(Object.entries(unusualPngs()).map(([name, bytes]) => [`blue/${name}`, bytes])),
        'blue/rotated.jpg': withExifOrientation(jpeg, 6),
        'blue/print.jpg': cmykJpeg([255, 0, 0, 255]),
        'blue/extended.jpg': jpegVariant(jpeg, 0xc1, 8),
        'blue/animated.gif': gifBytes,
        'blue/plain.webp': webp,
      };
      const dir = join(workDir, 'corpus');
      const good = { red: 3, blue: 3 };
      for (const [label, count] of Object.entries(good)) {
        await mkdir(join(dir, label), { recursive: true });
        for (let i = 0; i < count; i++) await writeFile(join(dir, label, `good-${i}.png`), colourPicture(label, 100 + i + (label === 'red' ? 0 : 50)));
      }
      for (const [path, [bytes]] of Object.entries(bad)) await writeFile(join(dir, path), bytes);
      // A 3 GB video (sparse on disk) in a class folder: refused by its size, never read.
      bad['blue/clip.mp4'] = [null, /file too large \(3072 MB; at most 100 MB\)/];
      await writeFile(join(dir, 'blue/clip.mp4'), Buffer.from('\0\0\0\x18ftypmp42', 'latin1'));
      await truncate(join(dir, 'blue/clip.mp4'), 3 * 2 ** 30);
      for (const [path, bytes] of Object.entries(unusual)) await writeFile(join(dir, path), bytes);

      const memory = await engineMemoryTracker(page, byTestId);
      await memory.note('before the corpus');
      await byTestId('folder-input').setInputFiles(dir);
      const counts = { red: good.red, blue: good.blue + Object.keys(unusual).length };
      await waitForClassCounts(page, counts, 240_000);
      await memory.note('after the bad and unusual pictures');
      const listed = await problemsOn(page);
      for (const [path, [, reason]] of Object.entries(bad)) {
        assert.ok(listed[path], `${path} is listed: ${JSON.stringify(listed)}`);
        assert.match(listed[path], reason, path);
        assert.ok(listed[path].length > path.length + 5, `${path} has a reason: ${listed[path]}`);
      }
      assert.deepEqual(Object.keys(listed).sort(), Object.keys(bad).sort(), 'exactly the bad files are listed');

      // Zips: empty, truncated, encrypted, a bomb (honest and lying sizes), unsafe and duplicate names.
      const zips = {
        'empty.zip': EMPTY_ZIP,
        'cut.zip': zipOf({ 'red/a.png': colourPicture('red', 300) }).subarray(0, 60),
        'locked.zip': markEncrypted(zipOf({ 'red/secret.png': colourPicture('red', 301) }, 0)),
        'bomb.zip': zipOf({ 'red/zeros.png': Buffer.alloc(150 << 20) }, 9),
        'lying-bomb.zip': lieAboutSizes(zipOf({ 'red/liar.png': Buffer.alloc(120 << 20) }, 9), 1000),
        'names.zip': zipOf({
          'red/../evil.png': colourPicture('red', 302),
          'red\\back.png': colourPicture('red', 303),
          'red/fine.png': colourPicture('red', 304),
        }),
      };
      // Duplicate names: fflate will not write them, so the second entry is renamed in place.
      const twice = zipOf({ 'red/one.png': colourPicture('red', 305), 'red/two.png': colourPicture('red', 306) }, 0);
      zips['twice.zip'] = Buffer.from(twice.toString('latin1').replaceAll('red/two.png', 'red/one.png'), 'latin1');
      const zipPaths = [];
      for (const [name, bytes] of Object.entries(zips)) {
        zipPaths.push(join(workDir, name));
        await writeFile(join(workDir, name), bytes);
      }
      await byTestId('zip-input').setInputFiles(zipPaths);
      await page.waitForFunction(() => document.querySelector('#zip-status')?.hidden === true, null, { timeout: 240_000 });
      await waitForClassCounts(page, { ...counts, red: counts.red + 1 }, 240_000); // red/fine.png
      await memory.note('after the zips');
      const errors = await errorsOn(page);
      assert.match(errors, /empty\.zip: the zip file is empty/);
      assert.match(errors, /cut\.zip: not a readable zip file/);
      const afterZips = await problemsOn(page);
      const reasonOf = (fragment) => Object.entries(afterZips).find(([path]) => path.includes(fragment))?.[1] ?? `(${fragment} not listed)`;
      assert.match(reasonOf('secret.png'), /encrypted/);
      assert.match(reasonOf('zeros.png'), /file too large/);
      assert.match(reasonOf('liar.png'), /could not be read from the zip: Invalid uncompressed size/);
      assert.match(reasonOf('evil.png'), /unsafe name/);
      assert.match(reasonOf('back.png'), /unsafe name/);
      assert.match(reasonOf('one.png'), /appears 2 times/);

      // Backbone weights that lie, and webtune exports whose metadata does: each refused with the
      // file's name, the backbone in use kept.
      const WEIGHTS_REASONS = {
        'huge-header.safetensors': /header too large/,
        'past-end.safetensors': /offset/,
        'shape-overflow.safetensors': /4294967296/,
        'overlapping.safetensors': /invalid offset for tensor `b`/,
        'dtype-size.safetensors': /invalid shape, data type, or offset/,
        'deep-json.safetensors': /invalid JSON in header/,
        'infinite.safetensors': /w: holds inf values/,
        'os-system.pth': /refusing to load os\.system/,
        'eval.pth': /refusing to load builtins\.eval/,
        'exec.pth': /refusing to load builtins\.exec/,
        'memo-bomb.pth': /memo bomb/,
        'nested.pth': /nested more than 100 deep/,
        'stride-zero.pth': /w: stride 0/,
        'torchscript.pt': /a TorchScript archive/,
        'export-no-labels.safetensors': /"labels" is empty/,
        'export-many-labels.safetensors': /_fc\.weight is \[2, 1280\], but the metadata says 100000 labels/,
        'export-hidden.safetensors': /_fc\.1\.weight is missing/,
        'export-vgg.safetensors': /unknown backbone "vgg16"/,
      };
      const exports = {
        'export-no-labels.safetensors': exportWith({ labels: '[]' }),
        'export-many-labels.safetensors': exportWith({ labels: JSON.stringify(Array.from({ length: 100_000 }, (_, i) => `class${i}`)) }),
        'export-hidden.safetensors': exportWith({ head_hidden_units: '4000000000' }),
        'export-vgg.safetensors': exportWith({ backbone: 'vgg16' }),
      };
      const weights = { ...lyingSafetensors(), ...hostilePickles(), ...exports };
      assert.deepEqual(Object.keys(weights).sort(), Object.keys(WEIGHTS_REASONS).sort(), 'a reason for every weights file');
      for (const [name, bytes] of Object.entries(weights)) {
        const path = join(workDir, name);
        await writeFile(path, bytes);
        await byTestId('backbone-input').setInputFiles(path);
        await page.waitForFunction(
          (name) => {
            const error = document.querySelector('[data-testid="backbone-error"]');
            return !error.hidden && error.textContent.startsWith(name);
          },
          name,
          { timeout: 120_000 },
        );
        const message = await byTestId('backbone-error').innerText();
        assert.match(message, /The backbone in use and your pictures are unchanged\.$/, message);
        assert.match(message, WEIGHTS_REASONS[name], message);
        await page.waitForSelector('[data-testid="backbone-status"][data-status="ready"][data-file=""]', { timeout: 60_000 });
        await memory.noteRefusing(name);
      }

      // Nothing lost, and the engine still trains.
      await waitForClassCounts(page, { ...counts, red: counts.red + 1 });
      await trainHeadEpochs(page, 2);
      await memory.note('after training');
      memory.check();
    });
  });

  test('the same picture twice is added and reported, within and across classes, also after a reload', { timeout: 6 * 60_000 }, async () => {
    const dir = join(workDir, 'duplicates');
    const same = colourPicture('red', 500);
    const files = {
      'blue/b1.png': colourPicture('blue', 501),
      'blue/same.png': same,
      'red/r1.png': colourPicture('red', 502),
      'red/same.png': same,
      'red/same-copy.png': same,
    };
    for (const [path, bytes] of Object.entries(files)) {
      await mkdir(join(dir, dirname(path)), { recursive: true });
      await writeFile(join(dir, path), bytes);
    }
    const groupsOn = (page) =>
      page.$$eval('[data-testid="duplicate"]', (items) => items.map((item) => `${item.getAttribute('data-paths')} ${item.getAttribute('data-across')}`));
    const waitForGroups = (page, count) =>
      page.waitForFunction((count) => document.querySelectorAll('[data-testid="duplicate"]').length === count, count, { timeout: 30_000 });
    await withWatchedPage('duplicates', async (page, byTestId) => {
      await page.goto(server.url);
      await waitForEngine(page, 'cpu');
      await byTestId('folder-input').setInputFiles(dir);
      await waitForClassCounts(page, { blue: 2, red: 3 });
      await waitForGroups(page, 1);
      // Files are added in path order.
      const acrossClasses = ['blue/same.png|red/same-copy.png|red/same.png true'];
      assert.deepEqual(await groupsOn(page), acrossClasses);
      assert.match(
        await byTestId('duplicates').innerText(),
        /blue\/same\.png, red\/same-copy\.png and red\/same\.png are the same picture, in classes "blue" and "red"/,
      );

      await page.reload();
      await waitForEngine(page, 'cpu');
      await waitForClassCounts(page, { blue: 2, red: 3 });
      await waitForGroups(page, 1);
      assert.deepEqual(await groupsOn(page), acrossClasses, 'restored pictures are checked too');
      // The browser keeps the engine's compact copies (JPEGs), not the original files.
      const records = await storedPictures(page);
      assert.equal(records.length, 5);
      for (const record of records) assert.deepEqual([record.compact, record.type, record.jpeg], [true, 'image/jpeg', true], JSON.stringify(record));

      // The same pixels in another file (a PNG with a comment added), after the reload: found.
      const again = join(workDir, 'duplicates-again');
      await mkdir(join(again, 'red'), { recursive: true });
      await writeFile(join(again, 'red', 'same-resaved.png'), Buffer.concat([same.subarray(0, -12), chunk('tEXt', Buffer.from('Comment\0saved again')), same.subarray(-12)]));
      await byTestId('folder-input').setInputFiles(again);
      await waitForClassCounts(page, { blue: 2, red: 4 });
      await page.waitForFunction(() => document.querySelector('[data-testid="duplicate"]')?.getAttribute('data-paths')?.includes('resaved'));
      assert.deepEqual(await groupsOn(page), ['blue/same.png|red/same-copy.png|red/same.png|red/same-resaved.png true']);

      // Without the blue class, the three red copies are still one picture thrice.
      await page.locator('[data-testid="class-row"][data-label="blue"] [data-testid="remove-class"]').click();
      await page.locator('[data-testid="class-row"][data-label="blue"] [data-testid="confirm-card-action"]').click();
      await waitForClassCounts(page, { red: 4 });
      await page.waitForFunction(() => document.querySelector('[data-testid="duplicate"]')?.getAttribute('data-across') === 'false');
      assert.deepEqual(await groupsOn(page), ['red/same-copy.png|red/same.png|red/same-resaved.png false']);
      assert.match(
        await byTestId('duplicates').innerText(),
        /red\/same-copy\.png, red\/same\.png and red\/same-resaved\.png are the same picture$/m,
      );
    });
  });

  test('nothing leaves the page: every request of a whole visit is same-origin, under a strict CSP', { timeout: 10 * 60_000 }, async () => {
    const { dataset, pictures } = await makeDataset(await mkdtemp(join(workDir, 'visit-')), 3);
    const proxy = await recordingProxy();
    const requests = [];
    try {
      await withWatchedPage(
        'requests',
        async (page, byTestId, context) => {
          context.on('request', (request) => {
            const worker = request.serviceWorker() ? ' (service worker)' : '';
            requests.push({ url: request.url(), type: request.resourceType(), from: worker });
          });
          const sockets = [];
          page.on('websocket', (socket) => sockets.push(socket.url()));
          page.on('dialog', (dialog) => void dialog.accept());

          const response = await page.goto(server.url);
          const csp = response.headers()['content-security-policy'] ?? '';
          assert.match(csp, /default-src 'self'/, `CSP: ${csp}`);
          assert.match(csp, /connect-src 'self'(;|$)/, `CSP: ${csp}`);
          assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'(;|$)/, `only wasm may be compiled, no eval: ${csp}`);
          assert.doesNotMatch(csp, /'unsafe-eval'|\*/, `CSP: ${csp}`);
          await waitForEngine(page, 'cpu');

          // Pictures, training, a prediction, a download.
          await byTestId('folder-input').setInputFiles(dataset);
          await waitForClassCounts(page, { blue: 3, red: 3 });
          await trainHeadEpochs(page, 2);
          await byTestId('predict-input').setInputFiles(pictures.red);
          await page.waitForSelector('[data-testid="prediction"][data-top-label]', { timeout: 120_000 });
          const [download] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), byTestId('download-button').click()]);
          assert.ok((await readFile(await download.path())).length > 1000, 'the model was downloaded');

          // The sample project, then a reload (served by the service worker by now).
          await byTestId('sample-project').click();
          await page.waitForSelector('[data-testid="class-row"][data-label="brick"]', { timeout: 120_000 });
          await page.waitForFunction(() => document.querySelector('[data-testid="add-status"]')?.getAttribute('data-adding') === '0', null, {
            timeout: 240_000,
          });
          await page.reload();
          await waitForEngine(page, 'cpu');
          assert.deepEqual(sockets, [], 'no WebSocket');
        },
        { acceptDownloads: true },
        proxy.flags,
      );
    } finally {
      await proxy.close();
    }
    const origin = new URL(server.url).origin;
    const foreign = requests.filter(({ url }) => !url.startsWith('blob:') && !url.startsWith('data:') && new URL(url).origin !== origin);
    assert.deepEqual(foreign, [], 'every request goes to the page\'s origin');
    assert.deepEqual(requests.filter(({ type }) => ['ping', 'websocket', 'eventsource'].includes(type)), [], 'no beacon, WebSocket or event stream');
    assert.deepEqual(proxy.seen, [], "nothing but the browser's own services went past the loopback");
    // The recording saw the whole visit: the page, its worker's wasm, the weights, the sample.
    for (const pattern of [/\/assets\/[^/]+\.wasm$/, /\/weights\/efficientnet_lite0\.safetensors$/, /\/sample\/manifest\.json$/, /\/sample\/brick\//]) {
      assert.ok(requests.some(({ url }) => pattern.test(url)), `${pattern} was requested: ${requests.map(({ url }) => url).join(', ')}`);
    }
    const types = [...new Set(requests.map(({ type, from }) => `${type}${from}`))].sort();
    console.log(`# ${requests.length} requests, all to ${origin}; kinds: ${types.join(', ')}`);
  });

  test('training cut short by a reload continues from its checkpoint', { timeout: 12 * 60_000 }, async () => {
    const { dataset } = await makeDataset(await mkdtemp(join(workDir, 'checkpoint-')), 4);
    await withWatchedPage('checkpoint', async (page, byTestId) => {
      const phaseTwo = (fineEpochs) => shortPhaseTwo(page, fineEpochs);
      await page.goto(server.url);
      await waitForEngine(page, 'cpu');
      await byTestId('folder-input').setInputFiles(dataset);
      await waitForClassCounts(page, { blue: 4, red: 4 });
      await phaseTwo(6);
      await byTestId('train-button').click();
      // The first fine-tuning epoch's checkpoint is kept; the offer is not shown while training.
      await page.waitForSelector('[data-testid="checkpoint"][data-phase="fine"]', { state: 'attached', timeout: 300_000 });
      assert.equal(await byTestId('checkpoint').isVisible(), false, 'no offer while the run goes on');
      assert.equal(await byTestId('train-status').getAttribute('data-phase'), 'fine-tuning');

      await page.reload();
      await waitForEngine(page, 'cpu');
      await waitForClassCounts(page, { blue: 4, red: 4 });
      await page.waitForSelector('[data-testid="checkpoint"]:not([hidden])', { timeout: 30_000 });
      assert.match(
        await byTestId('checkpoint').innerText(),
        /^Training was interrupted .* A checkpoint was kept at phase 2, fine-tuning epoch \d+; EfficientNet-Lite0, classes blue, red\./,
      );
      await byTestId('checkpoint-continue').click();
      // The backbone's status sits under the (closed) Advanced section: attached is enough.
      await page.waitForSelector('[data-testid="backbone-status"][data-status="ready"][data-file^="webtune-checkpoint-phase2-epoch"]', {
        state: 'attached',
        timeout: 120_000,
      });
      assert.match(await byTestId('checkpoint').innerText(), /press Train to continue training\.$/);
      await waitForClassCounts(page, { blue: 4, red: 4 });

      await phaseTwo(1);
      await trainUntilDone(page);
      assert.equal(await page.locator('[data-testid="epoch-row"][data-stage="fine"]').count(), 1);
      // A finished run needs no checkpoint: the next visit offers nothing.
      await page.waitForSelector('[data-testid="checkpoint"][data-phase=""]', { state: 'attached', timeout: 30_000 });
      await page.reload();
      await waitForEngine(page, 'cpu');
      await waitForClassCounts(page, { blue: 4, red: 4 });
      assert.equal(await byTestId('checkpoint').isVisible(), false, 'nothing to continue after a finished run');
    });
  });
});
