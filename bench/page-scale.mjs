// Many pictures through the page: writes `count` small generated pictures in `classes` class
// folders, adds them with the folder input, and measures what it costs the tab: the time to add
// them, the longest main-thread task while adding (PerformanceObserver "longtask"; also the longest
// after the task that hands the page the picked files, which is mostly the browser's own work),
// the memory of the page and its workers as the browser reports it (performance.
// measureUserAgentSpecificMemory, the page being cross-origin isolated, for their JS heaps; the
// engine's WebAssembly.Memory, which the page shows beside the backend; CDP's JSHeapUsedSize of
// the page alone) and as the system sees it (the renderers' RSS). It also checks
// functional facts: every picture is counted, Stop ends a training run on them at once (the page
// still answers), and a reload brings every picture back. A benchmark: prints numbers, asserts
// only those facts.
//
// `--dataset DIR` adds class folders already on disk instead (bench/photos.py writes 1-4 MP
// photos); `--train` then trains with the page's default recipe to the end and downloads the
// model instead of stopping, sampling the renderers' memory every second and timing the longest
// main-thread task while training; `--fine-epochs N` caps phase 2 (Advanced settings) where the
// whole default run would take too long; `--workers 1` keeps the engine on one core (the page's
// `?workers=1`). `--picker` adds them through the folder button as it
// works in Chromium, with `showDirectoryPicker` (its dialog stood in for by a copy of the dataset in
// the page's origin-private file system, made before the timing starts), instead of the input.
//
//   cd www && npm run build -- --mode bench && cd .. && node bench/page-scale.mjs [--count 5000] [--classes 20] [--size 64]
//   python3 bench/photos.py /tmp/photos && node bench/page-scale.mjs --dataset /tmp/photos [--picker] [--train]
//
// tests/e2e/scale.test.mjs runs it with fewer pictures.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { serveStatic } from '../tests/e2e/support/server.mjs';
import { launchChromium, launchChromiumProfile } from '../tests/e2e/support/chromium.mjs';
import { encodePng, random } from '../tests/e2e/support/png.mjs';
import { errorsOn, offerCopiedFolder, offerFolder, openAdvanced, waitForClassCounts, waitForEngine } from '../tests/e2e/support/page.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** A `size`² picture of noise around a hue that depends on `classIndex`. */
function picture(classIndex, classes, seed, size) {
  const next = random(seed);
  const hue = (classIndex / classes) * 2 * Math.PI;
  const base = [0, 2, 4].map((shift) => 128 + 100 * Math.cos(hue + (shift * Math.PI) / 3));
  const rgb = new Uint8Array(size * size * 3);
  for (let i = 0; i < size * size; i++) {
    for (let c = 0; c < 3; c++) rgb[i * 3 + c] = Math.max(0, Math.min(255, Math.round(base[c] + (next() - 0.5) * 80)));
  }
  return encodePng(size, size, rgb);
}

/** Writes the class folders; resolves to { dataset, counts: {label: n} }. */
export async function writePictures(dir, count, classes, size) {
  const dataset = join(dir, 'pictures');
  const counts = {};
  for (let i = 0; i < count; i++) {
    const label = `class-${String(i % classes).padStart(2, '0')}`;
    if (!counts[label]) await mkdir(join(dataset, label), { recursive: true });
    counts[label] = (counts[label] ?? 0) + 1;
    await writeFile(join(dataset, label, `p${i}.png`), picture(i % classes, classes, i + 1, size));
  }
  return { dataset, counts };
}

/** The page's and its workers' memory as the browser measures it, in bytes (null when it cannot). */
async function tabMemory(page) {
  return page.evaluate(async () => {
    if (!crossOriginIsolated || !performance.measureUserAgentSpecificMemory) return null;
    const result = await performance.measureUserAgentSpecificMemory();
    return result.bytes;
  });
}

/** The class folders of `dataset` and how many files each holds. */
async function countPictures(dataset) {
  const counts = {};
  for (const entry of await readdir(dataset, { withFileTypes: true })) {
    if (entry.isDirectory()) counts[entry.name] = (await readdir(join(dataset, entry.name))).length;
  }
  return counts;
}

/**
 * The resident memory of this process's Chromium renderers (the tab: page, workers and their wasm
 * memory, which measureUserAgentSpecificMemory leaves out), from /proc; null off Linux.
 */
async function rendererRss() {
  let total = 0;
  let found = false;
  const parents = new Map();
  const entries = await readdir('/proc').catch(() => []);
  const processes = [];
  for (const pid of entries.filter((name) => /^\d+$/.test(name))) {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      parents.set(Number(pid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
      processes.push(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  const descends = (pid) => {
    for (let p = pid, hops = 0; p > 1 && hops < 20; p = parents.get(p) ?? 0, hops++) if (p === process.pid) return true;
    return false;
  };
  for (const pid of processes) {
    if (!descends(pid)) continue;
    try {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmdline.includes('--type=renderer')) continue;
      const rss = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
      if (rss) {
        total += Number(rss[1]) * 1024;
        found = true;
      }
    } catch {
      // gone meanwhile
    }
  }
  return found ? total : null;
}

/** The engine's WebAssembly memory (its peak so far) as the page shows it, in bytes; null before it answers. */
async function engineMemory(page) {
  const value = await page.locator('[data-testid="backend-label"]').getAttribute('data-memory-bytes');
  return value ? Number(value) : null;
}

/** Every memory measure at once (see the top of this file). */
async function memoryNow(page) {
  return { tab: await tabMemory(page), engine: await engineMemory(page), heap: await pageHeap(page), rss: await rendererRss() };
}

async function pageHeap(page) {
  const session = await page.context().newCDPSession(page);
  await session.send('Performance.enable');
  const { metrics } = await session.send('Performance.getMetrics');
  await session.detach();
  return metrics.find((m) => m.name === 'JSHeapUsedSize')?.value ?? null;
}

/**
 * Runs the scenario on `serverUrl` and resolves to the measurements; throws when a functional
 * fact does not hold.
 */
export async function pageScale({ dist, count, classes, size, dataset: given = null, picker = false, train = false, fineEpochs = null, workers = 2, log = console.log }) {
  const dir = await mkdtemp(join(tmpdir(), 'webtune-scale-'));
  // The picker's stand-in copies the dataset into the page's storage: past a fresh context's
  // in-memory quota at photo sizes, so that run keeps a profile on disk, as a user's browser does.
  const browser = picker ? await launchChromiumProfile(join(dir, 'profile')) : await launchChromium();
  let server;
  try {
    let dataset, counts;
    if (given) {
      dataset = given;
      counts = await countPictures(given);
      count = Object.values(counts).reduce((a, b) => a + b, 0);
      classes = Object.keys(counts).length;
      size = null;
      log(`# adding ${count} pictures in ${classes} classes from ${given}`);
    } else {
      const generated = Date.now();
      ({ dataset, counts } = await writePictures(dir, count, classes, size));
      log(`# wrote ${count} ${size}×${size} PNGs in ${classes} classes in ${((Date.now() - generated) / 1000).toFixed(1)} s`);
    }
    // With `picker`, the page copies the dataset from here into its own file system first.
    server = await serveStatic(dist, picker ? { '/offered/': dataset } : {});
    const serverUrl = server.url;
    // `?workers=1` keeps the CPU engine on one core; by default it takes a second when there is one.
    const pageUrl = workers === 1 ? `${serverUrl}?workers=1` : serverUrl;
    const page = await browser.newPage();
    const pageErrors = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('crash', () => pageErrors.push('the page crashed'));
    await page.addInitScript(() => {
      // `afterPick`: the longest task that began after the one in which the input's files arrived
      // (that one is mostly the browser making 1000s of File objects, before the page's code runs).
      window.__longest = { ms: 0, count: 0, since: 0, picked: Infinity, afterPick: 0 };
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
          if (entry.startTime < window.__longest.since) continue;
          window.__longest.ms = Math.max(window.__longest.ms, entry.duration);
          window.__longest.count += 1;
          if (entry.startTime > window.__longest.picked) window.__longest.afterPick = Math.max(window.__longest.afterPick, entry.duration);
        }
      }).observe({ type: 'longtask', buffered: true });
      document.addEventListener(
        'change',
        (event) => {
          if (event.target?.dataset?.testid === 'folder-input') window.__longest.picked = performance.now();
        },
        true,
      );
    });
    await page.goto(pageUrl);
    await waitForEngine(page, 'cpu');
    if (picker) {
      const copied = Date.now();
      await offerFolder(page, `${serverUrl}offered/`, dataset);
      log(`# copied the dataset into the page's origin-private file system in ${((Date.now() - copied) / 1000).toFixed(1)} s (not timed below)`);
      // A fresh page, so that nothing of the copy (its garbage) is measured as adding.
      await page.reload();
      await waitForEngine(page, 'cpu');
      await offerCopiedFolder(page);
    }
    const before = await memoryNow(page);

    await page.evaluate(() => {
      window.__longest = { ms: 0, count: 0, since: performance.now(), picked: Infinity, afterPick: 0 };
    });
    const started = Date.now();
    // The folder button: the browser's `showDirectoryPicker` (the stand-in above), or the input's dialog.
    if (picker) await page.locator('label:has([data-testid="folder-input"])').click();
    else await page.locator('[data-testid="folder-input"]').setInputFiles(dataset);
    await waitForClassCounts(page, counts, 3_600_000);
    const addSeconds = (Date.now() - started) / 1000;
    const longest = await page.evaluate(() => window.__longest);
    const after = await memoryNow(page);
    // Thumbnails exist for the pictures in view only (each an <img> with an object URL).
    const thumbnails = await page.locator('[data-testid="thumb-image"]').count();
    assert.equal(await page.locator('[data-testid="file-problem"]').count(), 0, `no picture refused: ${await errorsOn(page)}`);
    log(`# (so far: ${count} added in ${addSeconds.toFixed(1)} s, longest task ${longest.ms.toFixed(0)} ms, renderer RSS ${after.rss} bytes)`);

    const training = train ? await trainAndDownload(page, dir, fineEpochs, log) : await stopEarly(page);

    // Nothing lost after a reload.
    const reloaded = Date.now();
    await page.reload();
    await waitForEngine(page, 'cpu');
    await waitForClassCounts(page, counts, 3_600_000);
    const restoreSeconds = (Date.now() - reloaded) / 1000;
    const restored = await memoryNow(page);
    assert.deepEqual(pageErrors, [], 'no uncaught error or crash');

    const mb = (bytes) => (bytes === null ? 'n/a' : `${(bytes / 2 ** 20).toFixed(0)} MB`);
    const results = {
      count,
      classes,
      size,
      picker,
      addSeconds,
      longestTaskMs: longest.ms,
      longestTaskAfterPickMs: longest.afterPick,
      longTasks: longest.count,
      thumbnails,
      ...training,
      restoreSeconds,
      memory: { before, after, restored },
    };
    log(
      `# ${count} pictures added in ${addSeconds.toFixed(1)} s (${(count / addSeconds).toFixed(0)}/s); longest main-thread task while adding ` +
        `${longest.ms.toFixed(0)} ms (${longest.count} tasks over 50 ms; ` +
        (picker ? 'through showDirectoryPicker' : `the longest after the task that brought the picked files ${longest.afterPick.toFixed(0)} ms`) +
        `); ${thumbnails} thumbnails on the page; ${training.stopSeconds === undefined ? '' : `Stop took ${training.stopSeconds.toFixed(1)} s; `}a reload brought all back in ${restoreSeconds.toFixed(1)} s`,
    );
    const sum = (m) => (m.tab === null || m.engine === null ? null : m.tab + m.engine);
    const trained = training.memoryAfterTraining;
    log(
      `# tab memory as the browser reports it (JS heaps of page + workers, measureUserAgentSpecificMemory, plus the engine's WebAssembly.Memory): ` +
        `${mb(sum(before))} before, ${mb(sum(after))} after adding${trained ? `, ${mb(sum(trained))} after training` : ''}, ${mb(sum(restored))} after the reload; ` +
        `of which the engine's: ${mb(before.engine)}, ${mb(after.engine)}${trained ? `, ${mb(trained.engine)}` : ''}, ${mb(restored.engine)}; ` +
        `JS heaps alone: ${mb(before.tab)}, ${mb(after.tab)}, ${mb(restored.tab)}; ` +
        `page JS heap (CDP JSHeapUsedSize): ${mb(before.heap)}, ${mb(after.heap)}, ${mb(restored.heap)}; ` +
        `renderer processes' RSS (/proc, wasm memory included): ${mb(before.rss)}, ${mb(after.rss)}, ${mb(restored.rss)}`,
    );
    return results;
  } finally {
    await browser.close();
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Training on all of them: Stop during feature extraction ends it at once. */
async function stopEarly(page) {
  await page.locator('[data-testid="train-button"]').click();
  await page.waitForSelector('[data-testid="train-status"][data-phase="features"]', { timeout: 120_000 });
  const stopAsked = Date.now();
  await page.locator('[data-testid="stop-button"]').click({ timeout: 10_000 });
  await page.waitForSelector('[data-testid="train-status"]:is([data-phase="stopped"], [data-phase="idle"], [data-phase="done"], [data-phase="failed"])', {
    timeout: 120_000,
  });
  const stoppedAs = await page.locator('[data-testid="train-status"]').getAttribute('data-phase');
  assert.ok(['stopped', 'idle'].includes(stoppedAs), `Stop ended the run (it ended as ${stoppedAs})`);
  return { stopSeconds: (Date.now() - stopAsked) / 1000 };
}

/**
 * Trains with the page's default recipe to the end, then downloads the model: the time of each,
 * the renderers' peak memory (sampled every second) and the longest main-thread task meanwhile.
 */
async function trainAndDownload(page, dir, fineEpochs, log) {
  if (fineEpochs !== null) {
    await openAdvanced(page);
    const field = page.locator('[data-testid="fine-epochs"]');
    if (!(await field.isVisible())) await page.locator('#advanced > summary').click();
    await field.fill(String(fineEpochs));
  }
  let peakRss = 0;
  const sampler = setInterval(() => {
    rendererRss().then((rss) => {
      peakRss = Math.max(peakRss, rss ?? 0);
    });
  }, 1000);
  try {
    await page.evaluate(() => {
      window.__longest = { ms: 0, count: 0, since: performance.now(), picked: Infinity, afterPick: 0 };
    });
    const started = Date.now();
    await page.locator('[data-testid="train-button"]').click();
    await page.waitForSelector('[data-testid="train-status"]:not([data-phase="idle"])', { timeout: 120_000 });
    const status = page.locator('[data-testid="train-status"]');
    await page.waitForSelector('[data-testid="train-status"]:is([data-phase="done"], [data-phase="failed"], [data-phase="stopped"])', { timeout: 6 * 3_600_000 });
    const trainSeconds = (Date.now() - started) / 1000;
    assert.equal(await status.getAttribute('data-phase'), 'done', await status.innerText());
    const trainLongest = await page.evaluate(() => window.__longest);
    const summary = (await status.innerText()).replace(/\s+/g, ' ').slice(0, 300);
    // The stages' times as the training panel shows them (ms), and phase 2's epochs.
    const stage = async (id) => ((await page.locator(`[data-testid="${id}"]`).count()) ? Number((await page.locator(`[data-testid="${id}"]`).getAttribute('data-ms')) || 0) : null);
    const stages = {
      featuresMs: await stage('feature-time'),
      headMs: await stage('epoch-time'),
      cacheMs: await stage('cache-time'),
      fineMs: await stage('fine-time'),
      fineEpochs: await page.locator('[data-testid="epoch-row"][data-stage="fine"]').count(),
    };
    log(`# trained in ${trainSeconds.toFixed(0)} s: ${summary}`);

    const asked = Date.now();
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 600_000 }), page.locator('[data-testid="download-button"]').click()]);
    const modelPath = join(dir, download.suggestedFilename());
    await download.saveAs(modelPath);
    const downloadSeconds = (Date.now() - asked) / 1000;
    const { size: modelBytes } = await stat(modelPath);
    return {
      // The engine's memory only grows: this is its peak while training.
      memoryAfterTraining: await memoryNow(page),
      trainSeconds,
      stages,
      trainLongestTaskMs: trainLongest.ms,
      trainLongTasks: trainLongest.count,
      peakRssWhileTraining: peakRss,
      downloadSeconds,
      modelBytes,
      trainSummary: summary,
    };
  } finally {
    clearInterval(sampler);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: '5000' },
      classes: { type: 'string', default: '20' },
      size: { type: 'string', default: '64' },
      dataset: { type: 'string' },
      picker: { type: 'boolean', default: false },
      train: { type: 'boolean', default: false },
      'fine-epochs': { type: 'string' },
      workers: { type: 'string', default: '2' },
    },
  });
  const results = await pageScale({
    dist: resolve(process.env.WEBTUNE_DIST ?? join(ROOT, 'www/dist')),
    count: Number(values.count),
    classes: Number(values.classes),
    size: Number(values.size),
    dataset: values.dataset ?? null,
    picker: values.picker,
    train: values.train,
    fineEpochs: values['fine-epochs'] === undefined ? null : Number(values['fine-epochs']),
    workers: Number(values.workers),
  });
  console.log(JSON.stringify(results));
}
