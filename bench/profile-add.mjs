// Where the time goes while the page adds many pictures: records a Chromium trace (with V8's
// sampling profiler on every thread) of adding `count` generated pictures through the folder
// input, and prints, per renderer thread (the page's main thread, the trainer worker, ...), how
// long it was busy (wall clock, and CPU time: on a loaded machine they differ) and the functions
// that took the most of it (self time; wasm functions are unnamed in a release build). The
// page's store and views run on the main thread, the decoding engine in the worker; IndexedDB
// writes run in the browser process, so they show as neither (the page does not wait for them).
// The main thread's tasks of 50 ms or more are listed one by one with the functions that ran in
// them. `--dataset DIR` adds class folders already on disk instead; `--train` then traces a
// training run with the page's default recipe (the adding is not traced).
//
//   cd www && npm run build -- --mode bench && cd .. && node bench/profile-add.mjs [--count 1000] [--classes 20] [--top 25] [--trace trace.json]
//   node bench/profile-add.mjs --dataset /tmp/photos --train

import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { serveStatic } from '../tests/e2e/support/server.mjs';
import { launchChromium } from '../tests/e2e/support/chromium.mjs';
import { waitForClassCounts, waitForEngine } from '../tests/e2e/support/page.mjs';
import { writePictures } from './page-scale.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Tasks this long (ms) are listed one by one, with what ran in them. */
const LONG_TASK_MS = 50;
const RENDERER_STEPS = new Set(['FunctionCall', 'EventDispatch', 'FireAnimationFrame', 'UpdateLayoutTree', 'Layout', 'PrePaint', 'Paint', 'Layerize', 'MajorGC', 'MinorGC', 'V8.GC_MC_BACKGROUND_MARKING', 'ParseHTML', 'TimerFire', 'v8.compile', 'v8.run']);

const CATEGORIES = ['toplevel', 'devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8.execute', 'disabled-by-default-v8.cpu_profiler'];

/** Per thread: busy milliseconds (top-level tasks) and self milliseconds by function, from the trace. */
function summarize(events) {
  const names = new Map();
  for (const e of events) if (e.ph === 'M' && e.name === 'thread_name') names.set(`${e.pid}:${e.tid}`, e.args.name);
  const threads = new Map();
  const thread = (key) => {
    if (!threads.has(key)) threads.set(key, { key, name: names.get(key) ?? key, busyMs: 0, cpuMs: 0, tasks: 0, longestMs: 0, self: new Map(), sampledMs: 0, sampled: [], long: [] });
    return threads.get(key);
  };
  // Outermost task events only (the main thread's RunTask sits inside a ThreadControllerImpl one,
  // a worker's does not); tdur is the thread's CPU time in it.
  const tasks = events
    .filter((e) => e.ph === 'X' && (e.name === 'RunTask' || e.name === 'ThreadControllerImpl::RunTask') && e.dur)
    .sort((a, b) => a.ts - b.ts || b.dur - a.dur);
  const endOf = new Map();
  for (const e of tasks) {
    const key = `${e.pid}:${e.tid}`;
    if (e.ts < (endOf.get(key) ?? -Infinity)) continue;
    endOf.set(key, e.ts + e.dur);
    const t = thread(key);
    t.busyMs += e.dur / 1000;
    t.cpuMs += (e.tdur ?? 0) / 1000;
    t.tasks += 1;
    t.longestMs = Math.max(t.longestMs, e.dur / 1000);
    if (e.dur >= LONG_TASK_MS * 1000) t.long.push({ ts: e.ts, dur: e.dur });
  }
  // V8's sampling profiler: "Profile" then "ProfileChunk"s, per profile id, nodes and samples.
  const profiles = new Map();
  for (const e of events) {
    if (e.name !== 'Profile' && e.name !== 'ProfileChunk') continue;
    const id = `${e.pid}:${e.id}`;
    if (!profiles.has(id)) profiles.set(id, { key: `${e.pid}:${e.tid}`, nodes: new Map(), samples: [], deltas: [], startTime: 0 });
    const p = profiles.get(id);
    if (e.name === 'Profile') {
      p.key = `${e.pid}:${e.tid}`;
      p.startTime = e.args?.data?.startTime ?? e.ts;
    }
    const data = e.args?.data;
    for (const node of data?.cpuProfile?.nodes ?? []) p.nodes.set(node.id, node);
    p.samples.push(...(data?.cpuProfile?.samples ?? []));
    p.deltas.push(...(data?.timeDeltas ?? []));
  }
  for (const p of profiles.values()) {
    const t = thread(p.key);
    let at = p.startTime;
    for (let i = 0; i < p.samples.length; i++) {
      at += p.deltas[i] ?? 0;
      const node = p.nodes.get(p.samples[i]);
      const ms = (p.deltas[i + 1] ?? 0) / 1000;
      if (!node || ms <= 0) continue;
      const f = node.callFrame;
      if (f.functionName === '(idle)' || f.functionName === '(program)') continue;
      const file = f.url ? f.url.split('/').pop() : '';
      const where = `${f.functionName || '(anonymous)'} ${file}${file ? `:${f.lineNumber + 1}` : ''}`;
      t.self.set(where, (t.self.get(where) ?? 0) + ms);
      t.sampled.push({ at, ms, where });
      t.sampledMs += ms;
    }
  }
  return [...threads.values()].filter((t) => t.busyMs > 0 || t.sampledMs > 0).sort((a, b) => b.busyMs - a.busyMs);
}

/** Prints the trace's busy threads, their top functions, and the main thread's long tasks one by one. */
function report(traceEvents, top, log) {
  const threads = summarize(traceEvents);
  const first = Math.min(...traceEvents.filter((e) => e.ts > 0).map((e) => e.ts));
  for (const t of threads) {
    if (t.busyMs < 100 && t.sampledMs < 100) continue;
    log(
      `\n## ${t.name}: busy ${(t.busyMs / 1000).toFixed(1)} s (${(t.cpuMs / 1000).toFixed(1)} s of CPU) in ${t.tasks} tasks ` +
        `(longest ${t.longestMs.toFixed(0)} ms); JS and wasm sampled ${(t.sampledMs / 1000).toFixed(1)} s, by self time:`,
    );
    for (const [where, ms] of [...t.self].sort((a, b) => b[1] - a[1]).slice(0, top)) log(`  ${ms.toFixed(0).padStart(7)} ms  ${where}`);
  }
  const main = threads.find((t) => t.name === 'CrRendererMain');
  if (!main) return;
  log(`\n## the page's main thread: ${main.long.length} tasks of ${LONG_TASK_MS} ms or more, with what ran in them`);
  for (const task of main.long) {
    const inside = new Map();
    for (const sample of main.sampled) {
      if (sample.at >= task.ts && sample.at <= task.ts + task.dur) inside.set(sample.where, (inside.get(sample.where) ?? 0) + sample.ms);
    }
    const what = [...inside].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([where, ms]) => `${where} ${ms.toFixed(0)} ms`);
    // The renderer's own steps (style, layout, paint, script, GC) in the task, by total time.
    const steps = new Map();
    for (const e of traceEvents) {
      if (e.ph !== 'X' || `${e.pid}:${e.tid}` !== main.key || !RENDERER_STEPS.has(e.name) || e.ts < task.ts || e.ts > task.ts + task.dur) continue;
      steps.set(e.name, (steps.get(e.name) ?? 0) + (e.dur ?? 0) / 1000);
    }
    const how = [...steps].sort((a, b) => b[1] - a[1]).map(([name, ms]) => `${name} ${ms.toFixed(0)} ms`);
    log(`  at ${((task.ts - first) / 1e6).toFixed(1)} s: ${(task.dur / 1000).toFixed(0)} ms [${how.join(', ')}]: ${what.join('; ') || '(no JS or wasm sampled)'}`);
  }
}

/**
 * Adds `count` generated pictures (or the class folders of `dataset`) and traces it; with
 * `train`, adds them untraced and traces a training run with the page's default recipe instead.
 */
export async function profileAdd({ serverUrl, count, classes, dataset: given = null, train = false, top, tracePath, log = console.log }) {
  const dir = await mkdtemp(join(tmpdir(), 'webtune-profile-'));
  const browser = await launchChromium();
  try {
    const { dataset, counts } = given ? await countPictures(given) : await writePictures(dir, count, classes, 64);
    const total = Object.values(counts).reduce((sum, n) => sum + n, 0);
    const page = await browser.newPage();
    await page.goto(serverUrl);
    await waitForEngine(page, 'cpu');
    if (!train) await browser.startTracing(page, { categories: CATEGORIES });
    let started = Date.now();
    await page.locator('[data-testid="folder-input"]').setInputFiles(dataset);
    await waitForClassCounts(page, counts, 3_600_000);
    const addSeconds = (Date.now() - started) / 1000;
    if (train) {
      await browser.startTracing(page, { categories: CATEGORIES });
      started = Date.now();
      await page.locator('[data-testid="train-button"]').click();
      await page.waitForSelector('[data-testid="train-status"]:is([data-phase="done"], [data-phase="failed"], [data-phase="stopped"])', { timeout: 6 * 3_600_000 });
    }
    const trace = await browser.stopTracing();
    if (tracePath) await writeFile(tracePath, trace);
    const what = train
      ? `${total} pictures in ${Object.keys(counts).length} classes (added in ${addSeconds.toFixed(1)} s) trained in ${((Date.now() - started) / 1000).toFixed(1)} s`
      : `${total} pictures in ${Object.keys(counts).length} classes added in ${addSeconds.toFixed(1)} s`;
    log(`# ${what} (traced, so slower than untraced)`);
    report(JSON.parse(trace.toString()).traceEvents, top, log);
  } finally {
    await browser.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The class folders of `dataset` and how many files each holds. */
async function countPictures(dataset) {
  const counts = {};
  for (const entry of await readdir(dataset, { withFileTypes: true })) {
    if (entry.isDirectory() && !entry.name.startsWith('.')) counts[entry.name] = (await readdir(join(dataset, entry.name))).length;
  }
  return { dataset, counts };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: '1000' },
      classes: { type: 'string', default: '20' },
      top: { type: 'string', default: '25' },
      trace: { type: 'string' },
      dataset: { type: 'string' },
      train: { type: 'boolean', default: false },
    },
  });
  const server = await serveStatic(resolve(process.env.WEBTUNE_DIST ?? join(ROOT, 'www/dist')));
  try {
    await profileAdd({
      serverUrl: server.url,
      count: Number(values.count),
      classes: Number(values.classes),
      dataset: values.dataset ?? null,
      train: values.train,
      top: Number(values.top),
      tracePath: values.trace,
    });
  } finally {
    await server.close();
  }
}
