// "Why did it decide that": a Grad-CAM toggle beside a picture. The first press asks the engine
// for the heatmap of the predicted class over the picture's center crop; later presses show or
// hide it. Toggles are kept per picture, so a view that rebuilds its list keeps them.

import { h } from './dom';
import { messageOf } from '../app/context';
import type { HeatmapData } from '../engine/protocol';

export type ComputeHeatmap = (file: Blob, fileName: string) => Promise<HeatmapData>;

/** Heatmap toggles by a picture's id in the view that shows them. */
export class Heatmaps {
  private readonly toggles = new Map<string, HTMLElement>();

  constructor(private readonly compute: ComputeHeatmap) {}

  /** The toggle for picture `id` (created on first use). */
  toggle(id: string, file: Blob, fileName: string): HTMLElement {
    let element = this.toggles.get(id);
    if (!element) {
      element = heatmapToggle(file, fileName, this.compute);
      this.toggles.set(id, element);
    }
    return element;
  }

  /** Forgets the toggles of pictures no longer shown. */
  keepOnly(ids: Iterable<string>): void {
    const keep = new Set(ids);
    for (const id of this.toggles.keys()) if (!keep.has(id)) this.toggles.delete(id);
  }

  clear(): void {
    this.toggles.clear();
  }
}

function heatmapToggle(file: Blob, fileName: string, compute: ComputeHeatmap): HTMLElement {
  const button = h('button', { type: 'button', class: 'heatmap-toggle', 'data-testid': 'heatmap-toggle', 'aria-pressed': 'false' }, 'Why?');
  const figure = h('figure', { class: 'heatmap', hidden: true });
  const wrapper = h('div', { class: 'heatmap-box' }, button, figure);
  let loaded = false;
  button.addEventListener('click', () => {
    const show = button.getAttribute('aria-pressed') !== 'true';
    button.setAttribute('aria-pressed', String(show));
    button.textContent = show ? 'Hide heatmap' : 'Why?';
    figure.hidden = !show;
    if (!show || loaded) return;
    loaded = true;
    figure.replaceChildren(h('figcaption', {}, 'Computing the heatmap…'));
    compute(file, fileName).then(
      (cam) => figure.replaceChildren(...drawn(cam)),
      (error: unknown) => {
        loaded = false;
        figure.replaceChildren(h('figcaption', { class: 'error-text', 'data-testid': 'heatmap-error' }, `No heatmap: ${messageOf(error)}`));
      },
    );
  });
  return wrapper;
}

function drawn(cam: HeatmapData): Node[] {
  const canvas = h('canvas', { class: 'heatmap-canvas', 'data-testid': 'heatmap' });
  drawHeatmap(canvas, cam);
  const text = `Where the model looked for "${cam.label}" (${(cam.probability * 100).toFixed(1)} %): red regions raised that class most (Grad-CAM on the last convolution).`;
  return [canvas, h('figcaption', {}, text)];
}

/** Draws `cam`'s overlay (the crop with the heatmap over it) on `canvas`, with its facts as data attributes. */
export function drawHeatmap(canvas: HTMLCanvasElement, cam: HeatmapData): void {
  canvas.width = cam.size;
  canvas.height = cam.size;
  Object.assign(canvas.dataset, {
    label: cam.label,
    mapWidth: String(cam.mapWidth),
    mapHeight: String(cam.mapHeight),
    peak: String(Math.max(...cam.map)),
  });
  const context = canvas.getContext('2d');
  if (context) {
    const pixels = new Uint8ClampedArray(cam.overlay.length);
    pixels.set(cam.overlay);
    context.putImageData(new ImageData(pixels, cam.size, cam.size), 0, 0);
  }
}
