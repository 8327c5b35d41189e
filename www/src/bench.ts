// The benchmark page (bench.html): phase-2 step timing in this browser, unfreeze 2 and 4, with
// and without the prefix cache. Prints a table and leaves the results for scripts in
// `window.__benchResults`, with `document.body.dataset.done = "1"` when finished (or
// `dataset.error` when it failed). bench/browser-fine-tune.mjs drives it.

import './style.css';
import type { BenchConfig, BenchMessage, StepTiming } from './bench-worker';
import { byId, h } from './dom';

declare global {
  interface Window {
    __benchResults: (StepTiming & { backend: string })[];
  }
}

const WEIGHTS_PATH = 'weights/efficientnet_lite0.safetensors';

const parameters = new URLSearchParams(location.search);
const positive = (name: string, fallback: number) => {
  const value = Number(parameters.get(name));
  return Number.isInteger(value) && value > 0 ? value : fallback;
};
const config: BenchConfig = {
  backend: parameters.get('backend') === 'webgpu' ? 'webgpu' : 'cpu',
  weightsUrl: new URL(WEIGHTS_PATH, document.baseURI).href,
  unfreeze: (parameters.get('unfreeze') ?? '2,4').split(',').map(Number).filter((n) => Number.isInteger(n) && n > 0),
  batch: positive('batch', 16),
  steps: positive('steps', 3),
};

const status = byId('bench-status');
const rows = byId<HTMLTableSectionElement>('bench-rows');
window.__benchResults = [];
const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;

const worker = new Worker(new URL('./bench-worker.ts', import.meta.url), { type: 'module', name: 'webtune-bench' });
worker.addEventListener('message', (event: MessageEvent<BenchMessage>) => {
  const message = event.data;
  switch (message.kind) {
    case 'ready':
      status.textContent = `Engine ready on ${message.backend} (${elapsed()}); timing ${config.unfreeze.length * 2} configurations…`;
      return;
    case 'result': {
      const r = message.result;
      window.__benchResults.push(r);
      rows.append(
        h(
          'tr',
          { 'data-testid': 'bench-row' },
          h('td', {}, r.backend),
          h('td', {}, String(r.unfreeze)),
          h('td', {}, r.cached ? 'cached' : 'uncached'),
          h('td', {}, String(r.batch)),
          h('td', {}, String(r.steps)),
          h('td', {}, r.medianMs.toFixed(0)),
          h('td', {}, r.imagesPerSecond.toFixed(1)),
        ),
      );
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
status.textContent = `Loading the engine (${config.backend}); batch ${config.batch}, ${config.steps} steps, unfreeze ${config.unfreeze.join(' and ')}…`;
worker.postMessage(config);
