// Exact duplicate pictures: the same picture added twice (the same file, or the same pixels in
// another file: their compact copies are equal), in one class or in two. They are kept (the user
// decides which to remove) but reported, since a picture in two classes teaches the model nothing
// and one twice in a class weighs double and can sit in both training and validation.

import type { HeldImage } from './state';

/** The SHA-256 of `file`'s bytes, in hex. */
export async function sha256Hex(file: Blob): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', await file.arrayBuffer()));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The held pictures whose hash (of their compact copy) another held picture shares, in groups;
 * each group and the groups in the order the pictures were added.
 */
export function duplicateGroups(images: ReadonlyMap<number, HeldImage>, hashes: ReadonlyMap<number, string>): HeldImage[][] {
  const byHash = new Map<string, HeldImage[]>();
  for (const image of inKeyOrder(images)) {
    const hash = hashes.get(image.key);
    if (hash === undefined) continue;
    const group = byHash.get(hash);
    if (group) group.push(image);
    else byHash.set(hash, [image]);
  }
  return [...byHash.values()].filter((group) => group.length > 1);
}

/**
 * The pictures by key, the order they were added in. The map is in that order already (keys only
 * grow, and a restore inserts them sorted), so it is only sorted when it is not: this runs per
 * frame while pictures are being added.
 */
export function inKeyOrder(images: ReadonlyMap<number, HeldImage>): Iterable<HeldImage> {
  let previous = -Infinity;
  for (const key of images.keys()) {
    if (key < previous) return [...images.values()].sort((a, b) => a.key - b.key);
    previous = key;
  }
  return images.values();
}
