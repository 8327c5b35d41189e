// "Preview augmentation": a few training views of one of the user's pictures, drawn by the
// engine exactly as phase 2 draws them (src/data/augment.rs) with the settings in the form.

import type { Augmentation } from '../engine/protocol';
import type { AppState, HeldImage } from '../app/state';
import { messageOf } from '../app/context';

const VIEWS = 6;
const SHOWN_SIZE = 112;

export interface AugmentPreviewElements {
  button: HTMLButtonElement;
  note: HTMLElement;
  views: HTMLElement;
}

/** Asks the engine for `count` views: RGBA squares of `size` pixels, one after the other. */
export type DrawViews = (file: File, augmentation: Augmentation, count: number, seed: number) => Promise<{ pixels: Uint8Array; size: number }>;

export function mountAugmentPreview(
  elements: AugmentPreviewElements,
  current: () => { augmentation: Augmentation; images: HeldImage[] },
  draw: DrawViews,
) {
  let next = 0;
  elements.button.addEventListener('click', async () => {
    const { augmentation, images } = current();
    if (images.length === 0) return;
    const image = images[next++ % images.length];
    elements.button.disabled = true;
    try {
      const count = augmentation.enabled ? VIEWS : 1;
      const { pixels, size } = await draw(image.file, augmentation, count, next);
      elements.views.replaceChildren(...canvases(pixels, size, count));
      elements.note.textContent = augmentation.enabled
        ? `${image.path}: ${VIEWS} random views with these settings (press again for the next picture).`
        : `${image.path}: augmentation is off, so every view is this center crop.`;
    } catch (error) {
      elements.views.replaceChildren();
      elements.note.textContent = `${image.path}: could not draw a preview (${messageOf(error)}).`;
    } finally {
      elements.button.disabled = false;
    }
  });

  return function render(state: AppState): void {
    elements.button.disabled = state.images.size === 0 || state.engine.status !== 'ready';
    elements.button.title = state.images.size === 0 ? 'Add pictures first.' : '';
  };
}

function canvases(pixels: Uint8Array, size: number, count: number): HTMLCanvasElement[] {
  const square = size * size * 4;
  return Array.from({ length: count }, (_, i) => {
    const canvas = document.createElement('canvas');
    canvas.width = canvas.height = size;
    canvas.className = 'preview-view';
    canvas.style.width = canvas.style.height = `${SHOWN_SIZE}px`;
    const data = new Uint8ClampedArray(pixels.buffer, pixels.byteOffset + i * square, square);
    canvas.getContext('2d')!.putImageData(new ImageData(new Uint8ClampedArray(data), size, size), 0, 0);
    return canvas;
  });
}
