// "Try it" on the webcam: the trained model classifies a frame about every PERIOD_MS and the
// top classes are shown as bars; with "Show the heatmap" on, each frame's Grad-CAM (where the
// model looked for its top class) is drawn beside them. The camera stops with the button, when the tab is hidden, when
// training starts or the model goes away, and after IDLE_MS so it is never left on unnoticed.

import type { HeatmapData, Prediction } from '../engine/protocol';
import { isTraining, type AppState } from '../app/state';
import { Camera } from './camera';
import { formatPercent, h } from './dom';
import { drawHeatmap } from './heatmap';
import { messageOf } from '../app/context';

const PERIOD_MS = 500;
const IDLE_MS = 5 * 60_000;
const SHOWN = 3;

export interface WebcamLiveActions {
  predict(file: File): Promise<Prediction[]>;
  heatmap(file: File): Promise<HeatmapData>;
  reportError(text: string): void;
}

export function mountWebcamLive(container: HTMLElement, actions: WebcamLiveActions) {
  const toggle = h('button', { type: 'button', class: 'secondary', 'data-testid': 'live-toggle' }, 'Try it on the webcam');
  const video = h('video', { class: 'camera', 'data-testid': 'live-video', hidden: true });
  const bars = h('ol', { class: 'live-bars', 'data-testid': 'live-predictions' });
  const note = h('p', { class: 'small muted', 'data-testid': 'live-status', 'aria-live': 'polite' });
  const withHeatmap = h('input', { type: 'checkbox', 'data-testid': 'live-heatmap-toggle' });
  const heatmap = h('canvas', { class: 'heatmap-canvas', 'data-testid': 'live-heatmap', hidden: true });
  container.append(
    toggle,
    h('label', { class: 'small' }, withHeatmap, ' Show the heatmap (where the model looks; slower)'),
    h('div', { class: 'live' }, video, bars, heatmap),
    note,
  );
  withHeatmap.addEventListener('change', () => {
    heatmap.hidden = !withHeatmap.checked || !camera.running;
  });

  const camera = new Camera(video);
  let timer: number | null = null;
  let idle: number | null = null;
  let frames = 0;
  let ready = false;

  function stop(reason: string): void {
    if (timer !== null) window.clearTimeout(timer);
    if (idle !== null) window.clearTimeout(idle);
    timer = idle = null;
    if (!camera.running) return;
    camera.stop();
    heatmap.hidden = true;
    toggle.textContent = 'Try it on the webcam';
    toggle.dataset.running = 'false';
    note.textContent = reason;
  }

  function show(predictions: Prediction[]): void {
    frames += 1;
    bars.dataset.frames = String(frames);
    bars.dataset.topLabel = predictions[0]?.label ?? '';
    bars.replaceChildren(
      ...predictions.slice(0, SHOWN).map(({ label, probability }) =>
        h(
          'li',
          { 'data-label': label, 'data-probability': probability },
          bar(probability),
          h('span', { class: 'bar-text' }, `${label} ${formatPercent(probability)}`),
        ),
      ),
    );
  }

  /** Set through the CSSOM: the page's CSP allows no inline style attributes. */
  function bar(probability: number): HTMLElement {
    const element = h('span', { class: 'bar' });
    element.style.width = `${(probability * 100).toFixed(1)}%`;
    return element;
  }

  /** One frame at a time: the next is taken PERIOD_MS after the last answer. */
  async function tick(): Promise<void> {
    timer = null;
    if (!camera.running) return;
    try {
      const file = await camera.frame('webcam.jpg');
      if (file && camera.running) show(await actions.predict(file));
      if (file && camera.running && withHeatmap.checked) {
        drawHeatmap(heatmap, await actions.heatmap(file));
        heatmap.dataset.frames = String(Number(heatmap.dataset.frames ?? 0) + 1);
        heatmap.hidden = false;
      }
    } catch (error) {
      stop('');
      actions.reportError(`Webcam: could not classify the frame: ${messageOf(error)}.`);
      return;
    }
    if (camera.running) timer = window.setTimeout(() => void tick(), PERIOD_MS);
  }

  toggle.addEventListener('click', () => {
    if (camera.running) {
      stop('Webcam stopped.');
      return;
    }
    camera.start().then(
      () => {
        toggle.textContent = 'Stop the webcam';
        toggle.dataset.running = 'true';
        note.textContent = `Classifying a frame about every ${PERIOD_MS} ms; it stops by itself after ${IDLE_MS / 60_000} minutes.`;
        idle = window.setTimeout(() => stop(`Webcam stopped after ${IDLE_MS / 60_000} minutes; start it again to go on.`), IDLE_MS);
        void tick();
      },
      (error: unknown) => {
        stop('');
        actions.reportError(`Webcam: ${messageOf(error)}.`);
      },
    );
  });
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) stop('Webcam stopped while the page was hidden.');
  });

  return function render(state: AppState): void {
    ready = state.trained !== null && !isTraining(state);
    toggle.disabled = !ready;
    if (!ready) stop(isTraining(state) ? 'Webcam stopped: training started.' : '');
  };
}
