// The pictures the user added, kept in the browser's IndexedDB so that a reload does not lose them:
// each picture's class, path, file name and the engine's compact copy of it (resized, a JPEG of
// tens of kB instead of the photo's megabytes, which comes back without a full-size decode), and
// the class list (a class may have no pictures yet). Records of earlier versions hold the original
// file instead (`compact` unset). Trained models are not kept. Every call is one transaction;
// IndexedDB runs overlapping read-write transactions in the order they were made, so the last write
// wins.

import { clear, createStore, delMany, entries, set, setMany, type UseStore } from 'idb-keyval';
import type { HeldImage } from './state';
import { messageOf } from './context';

export interface StoredLibrary {
  classes: string[];
  /** In the order they were added. */
  images: HeldImage[];
}

/** One picture as stored: a File's parts, since what matters is the bytes and the name. */
interface StoredPicture {
  key: number;
  label: string;
  path: string;
  name: string;
  type: string;
  lastModified: number;
  bytes: Blob;
  /** `bytes` are the engine's compact copy (see `HeldImage.compact`), not the original file. */
  compact?: boolean;
}

const CLASSES_KEY = 'classes';
const PICTURE = 'picture';
type PictureKey = [typeof PICTURE, number];

function pictureKey(key: number): PictureKey {
  return [PICTURE, key];
}

function isStoredPicture(value: unknown): value is StoredPicture {
  const p = value as Partial<StoredPicture> | null;
  return (
    typeof p === 'object' &&
    p !== null &&
    typeof p.key === 'number' &&
    typeof p.label === 'string' &&
    typeof p.path === 'string' &&
    typeof p.name === 'string' &&
    p.bytes instanceof Blob
  );
}

function stored({ key, label, path, file, compact }: HeldImage): StoredPicture {
  const picture = { key, label, path, name: file.name, lastModified: file.lastModified };
  return compact ? { ...picture, type: compact.type, bytes: compact, compact: true } : { ...picture, type: file.type, bytes: file };
}

export class LibraryStore {
  private readonly store: UseStore;

  /** Opens nothing yet: the database is opened by the first call. */
  constructor(databaseName = 'webtune', storeName = 'library') {
    this.store = createStore(databaseName, storeName);
  }

  /** Everything stored; records this version cannot read are skipped. */
  async load(): Promise<StoredLibrary> {
    let classes: string[] = [];
    const images: HeldImage[] = [];
    for (const [key, value] of await entries<IDBValidKey, unknown>(this.store)) {
      if (key === CLASSES_KEY && Array.isArray(value)) {
        classes = value.filter((label): label is string => typeof label === 'string');
      } else if (Array.isArray(key) && key[0] === PICTURE && isStoredPicture(value)) {
        const file = new File([value.bytes], value.name, { type: value.type, lastModified: value.lastModified });
        images.push({ key: value.key, label: value.label, path: value.path, file, compact: value.compact === true ? file : null });
      }
    }
    images.sort((a, b) => a.key - b.key);
    for (const { label } of images) if (!classes.includes(label)) classes.push(label);
    return { classes, images };
  }

  async saveClasses(classes: string[]): Promise<void> {
    await set(CLASSES_KEY, classes, this.store);
  }

  /** Stores pictures in one transaction: one per picture costs the page and the browser more. */
  async savePictures(images: HeldImage[]): Promise<void> {
    if (images.length > 0) await setMany(images.map((image): [IDBValidKey, StoredPicture] => [pictureKey(image.key), stored(image)]), this.store);
  }

  /**
   * Rewrites pictures whose class changed (a rename, a merge, a move), and the class list, in one
   * transaction: a reload sees all of the change or none of it.
   */
  async relabel(images: HeldImage[], classes: string[]): Promise<void> {
    await setMany([[CLASSES_KEY, classes], ...images.map((image): [IDBValidKey, StoredPicture] => [pictureKey(image.key), stored(image)])], this.store);
  }

  async deletePictures(keys: number[]): Promise<void> {
    if (keys.length > 0) await delMany(keys.map(pictureKey), this.store);
  }

  /** Forgets every class and picture. */
  async clear(): Promise<void> {
    await clear(this.store);
  }
}

/** Why the browser would not store the pictures, for the page to show. */
export function storageProblem(error: unknown): string {
  const name = error instanceof DOMException ? error.name : error instanceof Error ? error.name : '';
  if (name === 'QuotaExceededError') return "the browser's storage for this page is full";
  if (typeof indexedDB === 'undefined') return 'this browser offers no storage to the page (IndexedDB is missing)';
  const detail = messageOf(error);
  return `this browser would not let the page store them (${name ? `${name}: ` : ''}${detail})`;
}
