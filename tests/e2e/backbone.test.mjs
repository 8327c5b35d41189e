// Browser end-to-end test of bringing your own backbone weights, on the CPU path: a file that
// does not fit is refused with the engine's reason while the running backbone and the pictures
// stay; the published EfficientNet-Lite0 `.pth` (legacy PyTorch format) picked as the user's
// file replaces the bundled weights with every picture kept; a reload starts on it again, and
// "Use the bundled" goes back to the default for good. A file the browser will not store is
// used all the same, and said; a saved file that no longer loads gives way to the default.
// MobileNetV2 from a torchvision-named file (random weights from `webtune init-weights`) trains
// its head and downloads as safetensors with torchvision's names and as ONNX that onnxruntime runs.
//
//   cd www && npm run build && cd .. && WEBTUNE_BIN=<native webtune> node --test tests/e2e/backbone.test.mjs
//
// Needs the downloaded weights ($WEBTUNE_CACHE/downloads, as scripts/test.sh fetches them), the
// native CLI in WEBTUNE_BIN and python3 with onnxruntime (scripts/common.sh's ensure_numpy).

import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from './support/server.mjs';
import { errorsOn, makeDataset, openAdvanced, trainHeadEpochs, waitForClassCounts, waitForEngine, withPage } from './support/page.mjs';
import { parseSafetensors } from './support/safetensors.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DIST = resolve(process.env.WEBTUNE_DIST ?? join(ROOT, 'www', 'dist'));
const CACHE = process.env.WEBTUNE_CACHE ?? join(homedir(), '.cache', 'webtune');
const LEGACY_PTH = join(CACHE, 'downloads', 'efficientnet-lite0-57934424.pth');
const BUNDLED = join(DIST, 'weights', 'efficientnet_lite0.safetensors');
const ONNX_RUN = join(ROOT, 'tests', 'reference', 'onnx_run.py');

let server;
let workDir;

describe('bringing your own backbone', () => {
  before(async () => {
    assert.ok(existsSync(join(DIST, 'index.html')), `the built page is missing (${DIST}): run \`npm run build\` in www/`);
    assert.ok(existsSync(LEGACY_PTH), `${LEGACY_PTH} is missing: run \`bash scripts/test.sh\`, which downloads it`);
    server = await serveStatic(DIST);
    workDir = await mkdtemp(join(tmpdir(), 'webtune-e2e-backbone-'));
  });

  after(async () => {
    await server?.close();
    if (workDir && !process.env.WEBTUNE_E2E_KEEP) await rm(workDir, { recursive: true, force: true });
  });

  test('refuses weights that do not fit, loads a user .pth and restores it after a reload', { timeout: 10 * 60_000 }, async (t) => {
    const { dataset } = await makeDataset(workDir, 2);
    const wrong = join(workDir, 'renamed-stem.safetensors');
    await writeFile(wrong, renameTensor(await readFile(BUNDLED), '_conv_stem.weight', '_conv_stem.kernel'));

    await withPage('backbone', [], async (page, byTestId) => {
      const status = byTestId('backbone-status');
      const waitForBackbone = (file, restored) => waitForBackboneFile(page, file, restored);
      const train = () => trainTwoEpochs(page);

      await page.goto(`${server.url}?backend=cpu`);
      await waitForEngine(page, 'cpu');
      await openAdvanced(page);
      await waitForBackbone('', false);
      assert.equal(await status.getAttribute('data-name'), 'efficientnet_lite0');
      assert.equal(await status.getAttribute('data-max-unfreeze'), '17');
      // The bundled file's own size (f16 since the first-load work: 9.4 MB).
      const bundledMb = (statSync(BUNDLED).size / 1e6).toFixed(1);
      assert.match(await status.innerText(), new RegExp(`^In use: EfficientNet-Lite0 from the bundled weights \\(${bundledMb.replace('.', '\\.')} MB\\), imported in \\d`));
      // The phase-2 field's range comes from the engine.
      assert.equal(await byTestId('fine-tune-blocks').getAttribute('max'), '17');
      assert.match(await byTestId('fine-tune-blocks-range').innerText(), /up to 17 \(16 MBConv blocks and the final 1×1 convolution/);
      // Architectures without bundled weights say where to get them.
      await openAdvanced(page);
      await byTestId('backbone-select').selectOption('resnet18');
      assert.match(await byTestId('backbone-hint').innerText(), /torch\.save\(torchvision\.models\.resnet18\(weights="DEFAULT"\)\.state_dict\(\), "resnet18\.pth"\)/);
      await byTestId('backbone-select').selectOption('efficientnet_lite0');
      await byTestId('folder-input').setInputFiles(dataset);
      await waitForClassCounts(page, { blue: 2, red: 2 });

      await t.test('a file that does not fit is refused, naming the tensor; nothing is lost', async () => {
        await byTestId('backbone-input').setInputFiles(wrong);
        await page.waitForSelector('[data-testid="backbone-error"]:not([hidden])', { timeout: 120_000 });
        const error = await byTestId('backbone-error').innerText();
        assert.match(error, /^renamed-stem\.safetensors could not be loaded as EfficientNet-Lite0: .*_conv_stem\.weight/);
        assert.match(error, /The backbone in use and your pictures are unchanged\.$/);
        await waitForBackbone('', false);
        await waitForClassCounts(page, { blue: 2, red: 2 });
        await train();
      });

      await t.test('the legacy .pth as the user file replaces the bundled weights, pictures kept', async () => {
        await byTestId('backbone-input').setInputFiles(LEGACY_PTH);
        await waitForBackbone(basename(LEGACY_PTH), false);
        assert.equal(await byTestId('backbone-error').isVisible(), false, 'the earlier refusal is cleared');
        assert.match(
          await status.innerText(),
          /^In use: EfficientNet-Lite0 from efficientnet-lite0-57934424\.pth \(\d+\.\d MB\), imported in \d.*up to 17 units/,
        );
        await waitForClassCounts(page, { blue: 2, red: 2 });
        assert.equal(await byTestId('download-button').isDisabled(), true, 'the model of the old backbone is gone');
        await train();
      });

      await t.test('a reload restores the chosen weights; "Use the bundled" goes back for good', async () => {
        await page.reload();
        await waitForEngine(page, 'cpu');
        await openAdvanced(page);
        await waitForBackbone(basename(LEGACY_PTH), true);
        assert.match(await status.innerText(), /restored from your last visit/);
        await waitForClassCounts(page, { blue: 2, red: 2 });

        await openAdvanced(page);
        await byTestId('backbone-default').click();
        await waitForBackbone('', false);
        await page.reload();
        await waitForEngine(page, 'cpu');
        await openAdvanced(page);
        await waitForBackbone('', false);
        await waitForClassCounts(page, { blue: 2, red: 2 });
        assert.equal(await page.locator('[data-testid="error"]').count(), 0, await errorsOn(page));
      });
    });
  });

  test('MobileNetV2 from torchvision-named weights trains and downloads as safetensors and ONNX', { timeout: 5 * 60_000 }, async () => {
    assert.ok(process.env.WEBTUNE_BIN, 'WEBTUNE_BIN must name the native webtune binary (it writes the MobileNetV2 weights)');
    const dir = await mkdtemp(join(workDir, 'mobilenet-'));
    const weights = join(dir, 'mobilenet_v2.safetensors');
    const init = spawnSync(process.env.WEBTUNE_BIN, ['init-weights', '--backbone', 'mobilenet_v2', weights], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(init.status, 0, `webtune init-weights failed: ${init.stderr || init.error}`);
    const { dataset } = await makeDataset(dir, 2);

    await withPage('backbone-mobilenet', [], async (page, byTestId) => {
      await page.goto(`${server.url}?backend=cpu`);
      await waitForEngine(page, 'cpu');
      await openAdvanced(page);
      await byTestId('backbone-select').selectOption('mobilenet_v2');
      await byTestId('backbone-input').setInputFiles(weights);
      await waitForBackboneFile(page, 'mobilenet_v2.safetensors', false);
      // What the engine says about the backbone it built, not what the page assumes.
      assert.equal(await byTestId('backbone-status').getAttribute('data-engine-name'), 'mobilenet_v2');
      assert.match(await byTestId('backbone-status').innerText(), /^In use: MobileNetV2 from mobilenet_v2\.safetensors/);
      assert.equal(await byTestId('backbone-status').getAttribute('data-max-unfreeze'), '18');
      assert.equal(await byTestId('fine-tune-blocks').getAttribute('max'), '18');

      await byTestId('folder-input').setInputFiles(dataset);
      await waitForClassCounts(page, { blue: 2, red: 2 });
      await trainTwoEpochs(page);

      const safetensors = await download(page, byTestId, 'download-button', dir);
      assert.equal(safetensors.name, 'webtune-mobilenet_v2-2classes.safetensors');
      const { metadata, tensors } = parseSafetensors(safetensors.bytes);
      assert.equal(metadata.backbone, 'mobilenet_v2');
      assert.deepEqual(JSON.parse(metadata.labels).sort(), ['blue', 'red']);
      assert.deepEqual(tensors.get('features.0.0.weight')?.shape, [32, 3, 3, 3], 'torchvision\'s name for the stem convolution');
      assert.deepEqual(tensors.get('classifier.1.weight')?.shape, [2, 1280], 'torchvision\'s name for the head');

      assert.match(await byTestId('download-onnx-hint').innerText(), /^webtune-mobilenet_v2-2classes\.onnx: .*onnxruntime-web.*\[batch, 3, 224, 224\]/);
      const onnx = await download(page, byTestId, 'download-onnx-button', dir);
      assert.equal(onnx.name, 'webtune-mobilenet_v2-2classes.onnx');
      // A ModelProto starts with field 1 (ir_version, a varint): tag byte 0x08.
      assert.ok(onnx.bytes.length > 1_000_000 && onnx.bytes[0] === 0x08, `not an ONNX model: ${onnx.bytes.length} bytes starting ${onnx.bytes.subarray(0, 4).toString('hex')}`);
      const run = await runOnnx(onnx.path, dir);
      assert.deepEqual(run.report.logits, [1, 2]);
      assert.deepEqual(run.report.probabilities, [1, 2]);
      assert.ok(run.report.metadata.includes('labels') && run.report.metadata.includes('backbone'), `metadata: ${run.report.metadata}`);
      assert.ok(run.logits.every(Number.isFinite), `logits: ${run.logits}`);
      assert.ok(Math.abs(run.probabilities[0] + run.probabilities[1] - 1) < 1e-5, `probabilities: ${run.probabilities}`);
      assert.equal(await page.locator('[data-testid="error"]').count(), 0, await errorsOn(page));
    });
  });

  test('says so when the browser will not keep the weights file, and a reload starts on the default', { timeout: 5 * 60_000 }, async () => {
    await withPage('backbone-quota', [], async (page, byTestId) => {
      // Storing the backbone fails as it does when the origin's quota is used up.
      await page.addInitScript(() => {
        const put = IDBObjectStore.prototype.put;
        IDBObjectStore.prototype.put = function (value, key) {
          if (key === 'choice') throw new DOMException('quota used up (simulated by the test)', 'QuotaExceededError');
          return put.call(this, value, key);
        };
      });
      await page.goto(`${server.url}?backend=cpu`);
      await waitForEngine(page, 'cpu');
      await byTestId('backbone-input').setInputFiles(LEGACY_PTH);
      await page.waitForSelector('[data-testid="backbone-storage"]:not([hidden])', { timeout: 120_000 });
      assert.equal(await byTestId('backbone-status').getAttribute('data-file'), basename(LEGACY_PTH), 'the file is used all the same');
      assert.match(
        await byTestId('backbone-storage').innerText(),
        /^efficientnet-lite0-57934424\.pth \(\d+\.\d MB\) could not be kept in this browser: the browser's storage for this page is full\. .*after a reload the page starts on the default EfficientNet-Lite0\.$/,
      );
      await page.reload();
      await waitForEngine(page, 'cpu');
      await openAdvanced(page);
      await page.waitForSelector('[data-testid="backbone-status"][data-status="ready"][data-file=""]', { timeout: 60_000 });
    });
  });

  test('a saved weights file that no longer loads gives way to the default, once', { timeout: 5 * 60_000 }, async () => {
    await withPage('backbone-stale', [], async (page, byTestId) => {
      await page.goto(`${server.url}?backend=cpu`);
      await waitForEngine(page, 'cpu');
      // What an older visit might have left: a file the engine refuses.
      await page.evaluate(
        () =>
          new Promise((resolve, reject) => {
            const open = indexedDB.open('webtune-backbone');
            open.onerror = () => reject(open.error);
            open.onsuccess = () => {
              const tx = open.result.transaction('backbone', 'readwrite');
              const stale = { name: 'efficientnet_lite0', fileName: 'stale.pth', type: '', lastModified: 0, bytes: new Blob(['not weights']) };
              tx.objectStore('backbone').put(stale, 'choice');
              tx.oncomplete = () => resolve(open.result.close());
              tx.onerror = () => reject(tx.error);
            };
          }),
      );
      await page.reload();
      await waitForEngine(page, 'cpu');
      await page.waitForSelector('[data-testid="backbone-error"]:not([hidden])', { timeout: 60_000 });
      assert.match(
        await byTestId('backbone-error').innerText(),
        /^stale\.pth could not be loaded as EfficientNet-Lite0: not a weights file.*Using the default EfficientNet-Lite0 instead\.$/,
      );
      assert.equal(await byTestId('backbone-status').getAttribute('data-file'), '');
      // The default replaced it in the storage too: the next visit starts without a word.
      await page.waitForFunction(
        () =>
          new Promise((resolve) => {
            const open = indexedDB.open('webtune-backbone');
            open.onsuccess = () => {
              const get = open.result.transaction('backbone').objectStore('backbone').get('choice');
              get.onsuccess = () => resolve(open.result.close() ?? get.result === undefined);
            };
          }),
        null,
        { timeout: 10_000 },
      );
      await page.reload();
      await waitForEngine(page, 'cpu');
      await openAdvanced(page);
      await page.waitForSelector('[data-testid="backbone-status"][data-status="ready"][data-file=""]', { timeout: 60_000 });
      assert.equal(await byTestId('backbone-error').isVisible(), false);
    });
  });
});

/** Waits for the backbone section to show `file` ('' = the bundled weights) loaded and ready. */
async function waitForBackboneFile(page, file, restored) {
  const selector = `[data-testid="backbone-status"][data-status="ready"][data-file="${file}"][data-restored="${restored}"]`;
  await page.waitForSelector(selector, { timeout: 120_000 }).catch(async (error) => {
    const status = await page.locator('[data-testid="backbone-status"]').innerText();
    throw new Error(`backbone never ready with "${file}": ${status}; ${await errorsOn(page)}\n${error.message}`);
  });
}

/** Trains with the page's recipe for 2 epochs (the head only, on this few pictures). */
async function trainTwoEpochs(page) {
  await trainHeadEpochs(page, 2);
  assert.equal(await page.locator('[data-testid="epoch-row"]').count(), 2);
}

/** Clicks the download button `testId` and returns the file's suggested name and bytes. */
async function download(page, byTestId, testId, dir) {
  const [file] = await Promise.all([page.waitForEvent('download', { timeout: 120_000 }), byTestId(testId).click()]);
  const path = join(dir, file.suggestedFilename());
  await file.saveAs(path);
  return { name: file.suggestedFilename(), path, bytes: await readFile(path) };
}

/** Runs `model` (an .onnx file) on one all-zero image with onnxruntime (tests/reference/onnx_run.py). */
async function runOnnx(model, dir) {
  const [input, logits, probabilities] = ['zeros.f32', 'logits.f32', 'probabilities.f32'].map((name) => join(dir, name));
  await writeFile(input, Buffer.alloc(4 * 3 * 224 * 224));
  const run = spawnSync(process.env.PYTHON ?? 'python3', [ONNX_RUN, model, input, logits, '--probabilities', probabilities], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(run.status, 0, `onnxruntime failed (is \`onnxruntime\` installed? scripts/common.sh's ensure_numpy does it): ${run.stderr || run.error}`);
  const floats = (bytes) => [...new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)];
  return { report: JSON.parse(run.stdout), logits: floats(await readFile(logits)), probabilities: floats(await readFile(probabilities)) };
}

/** A copy of a safetensors file with one tensor renamed (the data stays where it was). */
function renameTensor(bytes, from, to) {
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8'));
  assert.ok(header[from], `${from} is not in the file`);
  header[to] = header[from];
  delete header[from];
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([length, Buffer.from(json), bytes.subarray(8 + headerLength)]);
}
