// "Preview augmentation": a few random training views of one of the user's pictures, drawn here
// with the same transforms and settings as the engine's augmentation (src/data/augment.rs): a
// random crop of at least the smallest-crop share of the picture with an aspect ratio in
// [3/4, 4/3], resized to the input size, mirrored half of the time, and brightness / contrast /
// saturation jitter. The engine draws its own views with its own random numbers, so these show
// what the settings do, not the exact views it will train on.

import type { AugmentationSettings } from './protocol';
import type { AppState, HeldImage } from './state';

const VIEWS = 6;
/** The engine keeps each picture with its shorter side at this size and crops from it. */
const RESIZE = 256;
const SHOWN_SIZE = 112;

export interface AugmentPreviewElements {
  button: HTMLButtonElement;
  note: HTMLElement;
  views: HTMLElement;
}

export function mountAugmentPreview(
  elements: AugmentPreviewElements,
  current: () => { augmentation: AugmentationSettings; inputSize: number; images: HeldImage[] },
) {
  let next = 0;
  elements.button.addEventListener('click', async () => {
    const { augmentation, inputSize, images } = current();
    if (images.length === 0) return;
    const image = images[next++ % images.length];
    elements.button.disabled = true;
    try {
      const canvases = await previewViews(image.file, augmentation, inputSize, augmentation.enabled ? VIEWS : 1);
      elements.views.replaceChildren(...canvases);
      elements.note.textContent = augmentation.enabled
        ? `${image.path}: ${VIEWS} random views with these settings (press again for the next picture).`
        : `${image.path}: augmentation is off, so every view is this center crop.`;
    } catch (error) {
      elements.views.replaceChildren();
      elements.note.textContent = `${image.path}: could not draw a preview (${error instanceof Error ? error.message : String(error)}).`;
    } finally {
      elements.button.disabled = false;
    }
  });

  return function render(state: AppState): void {
    elements.button.disabled = state.images.size === 0;
    elements.button.title = state.images.size === 0 ? 'Add pictures first.' : '';
  };
}

async function previewViews(file: File, augmentation: AugmentationSettings, size: number, count: number): Promise<HTMLCanvasElement[]> {
  // EXIF orientation is applied, as the engine does.
  const bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  try {
    const scale = RESIZE / Math.max(1, Math.min(bitmap.width, bitmap.height));
    const w = Math.max(size, Math.round(bitmap.width * scale));
    const h = Math.max(size, Math.round(bitmap.height * scale));
    const source = new OffscreenCanvas(w, h);
    source.getContext('2d')!.drawImage(bitmap, 0, 0, w, h);
    return Array.from({ length: count }, () => view(source, augmentation, size));
  } finally {
    bitmap.close();
  }
}

/** One view, as `Augmentation::view` makes it (the center crop when augmentation is off). */
function view(source: OffscreenCanvas, a: AugmentationSettings, size: number): HTMLCanvasElement {
  const { width: w, height: h } = source;
  let crop: { x: number; y: number; w: number; h: number };
  if (a.enabled) {
    const [cw, ch] = cropSize(w, h, Math.min(1, Math.max(0.05, a.minCropArea)));
    crop = { x: randomInt(0, w - cw), y: randomInt(0, h - ch), w: cw, h: ch };
  } else {
    crop = { x: Math.floor((w - size) / 2), y: Math.floor((h - size) / 2), w: size, h: size };
  }
  const canvas = document.createElement('canvas');
  canvas.width = size;
  canvas.height = size;
  canvas.className = 'preview-view';
  canvas.style.width = canvas.style.height = `${SHOWN_SIZE}px`;
  const ctx = canvas.getContext('2d')!;
  if (a.enabled && a.horizontalFlip && Math.random() < 0.5) {
    ctx.translate(size, 0);
    ctx.scale(-1, 1);
  }
  ctx.drawImage(source, crop.x, crop.y, crop.w, crop.h, 0, 0, size, size);
  if (a.enabled && a.colorJitter > 0) {
    const j = a.colorJitter;
    const factor = () => 1 + (Math.random() * 2 - 1) * j;
    const pixels = ctx.getImageData(0, 0, size, size);
    jitter(pixels.data, factor(), factor(), factor());
    ctx.putImageData(pixels, 0, 0);
  }
  return canvas;
}

/** A crop of random area share in [minArea, 1] and aspect ratio in [3/4, 4/3] that fits. */
function cropSize(w: number, h: number, minArea: number): [number, number] {
  const area = w * h;
  for (let i = 0; i < 10; i++) {
    const target = area * (minArea + Math.random() * (1 - minArea));
    const ratio = Math.exp(Math.log(3 / 4) + Math.random() * (Math.log(4 / 3) - Math.log(3 / 4)));
    const cw = Math.round(Math.sqrt(target * ratio));
    const ch = Math.round(Math.sqrt(target / ratio));
    if (cw >= 1 && cw <= w && ch >= 1 && ch <= h) return [cw, ch];
  }
  const side = Math.min(w, h);
  return [side, side];
}

function randomInt(low: number, high: number): number {
  return low + Math.floor(Math.random() * (high - low + 1));
}

const luma = (r: number, g: number, b: number) => 0.299 * r + 0.587 * g + 0.114 * b;

/** The engine's jitter: brightness, then contrast around the mean luma, then saturation. */
function jitter(rgba: Uint8ClampedArray, brightness: number, contrast: number, saturation: number): void {
  let sum = 0;
  for (let i = 0; i < rgba.length; i += 4) sum += luma(rgba[i], rgba[i + 1], rgba[i + 2]);
  const mean = sum / Math.max(1, rgba.length / 4);
  for (let i = 0; i < rgba.length; i += 4) {
    const gray = luma(rgba[i], rgba[i + 1], rgba[i + 2]);
    for (let c = 0; c < 3; c++) {
      let v = rgba[i + c] * brightness;
      v = (v - mean * brightness) * contrast + mean * brightness;
      v = gray * brightness + (v - gray * brightness) * saturation;
      rgba[i + c] = Math.round(v); // Uint8ClampedArray clamps to [0, 255]
    }
  }
}
