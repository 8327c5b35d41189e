// The benchmark page (bench.html). `?mode=steps` (the default): phase-2 step timing in this
// browser, unfreeze 2 and 4, with and without the prefix cache. `?mode=backbones`: each listed
// backbone's import time, parameter count and forward time, from weight files served at
// `?weights=`. Prints a table and leaves the results for scripts in `window.__benchResults`,
// with `document.body.dataset.done = "1"` when finished (or `dataset.error` when it failed).
// bench/browser-fine-tune.mjs and bench/browser-backbones.mjs drive it.
// `?mode=side-by-side`: no run of its own; it sets `document.body.dataset.ready = "1"` and
// offers `window.__sideBySide.call(worker, request)`, which bench/side-by-side.mjs uses to
// alternate rounds between webtune (`webtune`, bench-worker.ts) and TF.js (`tfjs:<backend>:<threads>`,
// bench-tfjs-worker.ts, started with its `init` request on first use).

import '../style.css';
import type { BackboneTiming, BenchConfig, BenchMessage, SideBySideReply, SideBySideRequest, StepTiming } from './bench-worker';
import type { TfjsReply, TfjsRequest } from './bench-tfjs-worker';
import { isBackboneName } from '../app/backbones';
import { byId, formatBytes, h } from '../views/dom';

type SideBySide = {
  call(worker: 'webtune', request: SideBySideRequest): Promise<SideBySideReply>;
  call(worker: `tfjs:${string}`, request: TfjsRequest): Promise<TfjsReply>;
};

declare global {
  interface Window {
    __benchResults: ((StepTiming & { backend: string }) | BackboneTiming)[];
    __sideBySide: SideBySide;
  }
}

/** One request at a time per worker: each reply answers the request before it. */
function requester<Request, Reply>(worker: Worker): (request: Request) => Promise<Reply> {
  let queue: Promise<unknown> = Promise.resolve();
  return (request) => {
    const reply = queue.then(
      () =>
        new Promise<Reply>((resolve, reject) => {
          const onError = (event: ErrorEvent) => reject(new Error(event.message || 'worker error'));
          worker.addEventListener('message', (event: MessageEvent<Reply>) => (worker.removeEventListener('error', onError), resolve(event.data)), { once: true });
          worker.addEventListener('error', onError, { once: true });
          worker.postMessage(request);
        }),
    );
    queue = reply.catch(() => undefined);
    return reply;
  };
}

function mountSideBySide(): void {
  const status = byId('bench-status');
  const rows = byId<HTMLTableSectionElement>('bench-rows');
  byId('bench-head').replaceChildren(h('tr', {}, ...['worker', 'request', 'reply'].map((name) => h('th', {}, name))));
  const workers = new Map<string, (request: unknown) => Promise<unknown>>();
  const start = (name: string) => {
    if (name === 'webtune') return requester(new Worker(new URL('./bench-worker.ts', import.meta.url), { type: 'module', name: 'webtune-bench' }));
    if (name.startsWith('tfjs:')) return requester(new Worker(new URL('./bench-tfjs-worker.ts', import.meta.url), { type: 'module', name }));
    throw new Error(`unknown worker ${name}`);
  };
  const call = async (name: string, request: unknown) => {
    let worker = workers.get(name);
    if (!worker) workers.set(name, (worker = start(name)));
    status.textContent = `${name}: ${JSON.stringify(request)}…`;
    const reply = await worker(request);
    rows.append(h('tr', { 'data-testid': 'bench-row' }, h('td', {}, name), h('td', {}, JSON.stringify(request)), h('td', {}, JSON.stringify(reply))));
    status.textContent = 'Waiting for the next request.';
    return reply;
  };
  window.__sideBySide = { call } as SideBySide;
  document.body.dataset.ready = '1';
}

const parameters = new URLSearchParams(location.search);

if (parameters.get('mode') === 'side-by-side') mountSideBySide();
else runConfigured();

function runConfigured(): void {
  const WEIGHTS_PATH = 'weights/efficientnet_lite0.safetensors';

  const positive = (name: string, fallback: number) => {
    const value = Number(parameters.get(name));
    return Number.isInteger(value) && value > 0 ? value : fallback;
  };
  const backend = parameters.get('backend') === 'webgpu' ? 'webgpu' : 'cpu';
  const config: BenchConfig =
    parameters.get('mode') === 'backbones'
      ? {
          mode: 'backbones',
          backend,
          // A folder URL, relative to the page; each file is `<backbone>.safetensors` in it.
          weightsBase: new URL((parameters.get('weights') ?? 'bench-weights/').replace(/\/?$/, '/'), document.baseURI).href,
          backbones: (parameters.get('backbones') ?? 'efficientnet_lite0,mobilenet_v2,resnet18,resnet50').split(',').filter(isBackboneName),
          batch: positive('batch', 1),
          steps: positive('steps', 3),
        }
      : {
          mode: 'steps',
          backend,
          weightsUrl: new URL(WEIGHTS_PATH, document.baseURI).href,
          unfreeze: (parameters.get('unfreeze') ?? '2,4').split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0),
          batch: positive('batch', 16),
          steps: positive('steps', 3),
        };

  const COLUMNS = {
    steps: ['backend', 'unfreeze', 'prefix', 'batch', 'steps', 'median ms/step', 'images/s'],
    backbones: ['backend', 'backbone', 'weights file', 'parameters', 'import ms', 'batch', 'steps', 'median forward ms', 'images/s'],
  };

  const status = byId('bench-status');
  const rows = byId<HTMLTableSectionElement>('bench-rows');
  byId('bench-head').replaceChildren(h('tr', {}, ...COLUMNS[config.mode].map((name) => h('th', {}, name))));
  window.__benchResults = [];
  const started = performance.now();
  const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
  const row = (...cells: string[]) => rows.append(h('tr', { 'data-testid': 'bench-row' }, ...cells.map((cell) => h('td', {}, cell))));

  const worker = new Worker(new URL('./bench-worker.ts', import.meta.url), { type: 'module', name: 'webtune-bench' });
  worker.addEventListener('message', (event: MessageEvent<BenchMessage>) => {
    const message = event.data;
    switch (message.kind) {
      case 'ready':
        status.textContent = `Engine ready on ${message.backend} (${elapsed()}); timing…`;
        return;
      case 'result': {
        const r = message.result;
        window.__benchResults.push(r);
        row(r.backend, String(r.unfreeze), r.cached ? 'cached' : 'uncached', String(r.batch), String(r.steps), r.medianMs.toFixed(0), r.imagesPerSecond.toFixed(1));
        return;
      }
      case 'backbone': {
        const r = message.result;
        window.__benchResults.push(r);
        row(
          r.backend,
          r.backbone,
          formatBytes(r.fileBytes),
          r.parameters.toLocaleString('en'),
          r.importMs.toFixed(0),
          String(r.batch),
          String(r.steps),
          r.forwardMs.toFixed(0),
          ((1000 * r.batch) / r.forwardMs).toFixed(1),
        );
        status.textContent = `${r.backbone} done (${elapsed()})…`;
        return;
      }
      case 'done':
        status.textContent = `Done in ${elapsed()}.`;
        document.body.dataset.done = '1';
        worker.terminate();
        return;
      case 'error':
        status.textContent = `Failed: ${message.message}`;
        document.body.dataset.error = message.message;
        worker.terminate();
        return;
    }
  });
  worker.addEventListener('error', (event) => {
    status.textContent = `The benchmark worker failed: ${event.message}`;
    document.body.dataset.error = event.message || 'worker error';
  });
  status.textContent =
    config.mode === 'steps'
      ? `Loading the engine (${config.backend}); batch ${config.batch}, ${config.steps} steps, unfreeze ${config.unfreeze.join(' and ')}…`
      : `Timing ${config.backbones.join(', ')} on ${config.backend}; batch ${config.batch}, ${config.steps} forwards each…`;
  worker.postMessage(config);
}
