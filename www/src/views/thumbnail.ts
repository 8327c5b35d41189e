// Thumbnails of the user's pictures. An <img> of a camera photo holds its whole decoded bitmap
// (4 megapixels: 16 MB) for as long as it is on the page, so a grid of photos cost the tab
// hundreds of MB; each picture is shown instead from a copy scaled down once, off the main
// thread, and kept with its file. The copy is made from the engine's compact copy of the picture
// (256 px on its shorter side, orientation applied) once there is one: a few milliseconds instead
// of decoding the camera's full-size JPEG.

import type { HeldImage } from '../app/state';

/** Height of the scaled copy in px: cells show pictures at up to 96 CSS px, twice that on dense screens. */
const HEIGHT = 192;
/** Pictures scaled at once: each decodes its full-size bitmap meanwhile. */
const AT_ONCE = 2;

/** The scaled copy of each file, made once; dropped with the file. */
const copies = new WeakMap<Blob, Promise<Blob>>();
let running = 0;
const waiting: (() => void)[] = [];

/**
 * Shows a small copy of `picture` in `img` once it is made (the file itself where the browser
 * cannot decode it, which then shows as it did before). Returns the function that releases it:
 * call it when the image leaves the page.
 */
export function showThumbnail(img: HTMLImageElement, picture: HeldImage): () => void {
  let url: string | null = null;
  let released = false;
  void smallCopy(picture.compact ?? picture.file).then((copy) => {
    if (released) return;
    url = URL.createObjectURL(copy);
    img.src = url;
  });
  return () => {
    released = true;
    if (url !== null) URL.revokeObjectURL(url);
  };
}

function smallCopy(file: Blob): Promise<Blob> {
  let copy = copies.get(file);
  if (!copy) {
    copy = inTurn(() => scaled(file)).catch(() => file);
    copies.set(file, copy);
  }
  return copy;
}

async function scaled(file: Blob): Promise<Blob> {
  // The EXIF orientation is applied, as an <img> of the file would.
  const bitmap = await createImageBitmap(file, { resizeHeight: HEIGHT, resizeQuality: 'medium', imageOrientation: 'from-image' });
  try {
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    canvas.getContext('2d')?.drawImage(bitmap, 0, 0);
    // WebP keeps transparency; a browser that cannot write it gives PNG.
    return await canvas.convertToBlob({ type: 'image/webp', quality: 0.85 });
  } finally {
    bitmap.close();
  }
}

/** Runs `job` once fewer than `AT_ONCE` run; a finished job hands its place to the next waiting one. */
async function inTurn<T>(job: () => Promise<T>): Promise<T> {
  if (running >= AT_ONCE) await new Promise<void>((go) => waiting.push(go));
  else running += 1;
  try {
    return await job();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else running -= 1;
  }
}
