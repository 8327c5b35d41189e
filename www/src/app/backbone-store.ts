// The backbone the user chose, kept in the browser's IndexedDB so that a reload starts the engine
// on it again: the architecture and the weights file's name and bytes. A database of its own, so
// that "Clear all" (which empties the pictures' store) keeps it; nothing stored means the bundled
// default.

import { createStore, del, get, set, type UseStore } from 'idb-keyval';
import type { BackboneName } from '../engine/protocol';
import type { BackboneChoice } from './state';

const KEY = 'choice';
const NAMES: readonly string[] = ['efficientnet_lite0', 'mobilenet_v2', 'resnet18', 'resnet50'] satisfies BackboneName[];

interface StoredBackbone {
  name: BackboneName;
  fileName: string;
  type: string;
  lastModified: number;
  bytes: Blob;
}

function isStoredBackbone(value: unknown): value is StoredBackbone {
  const b = value as Partial<StoredBackbone> | null;
  return (
    typeof b === 'object' &&
    b !== null &&
    typeof b.name === 'string' &&
    NAMES.includes(b.name) &&
    typeof b.fileName === 'string' &&
    b.bytes instanceof Blob
  );
}

export class BackboneStore {
  private readonly store: UseStore;

  /** Opens nothing yet: the database is opened by the first call. */
  constructor(databaseName = 'webtune-backbone', storeName = 'backbone') {
    this.store = createStore(databaseName, storeName);
  }

  /** The stored choice, or null when none (or one this version cannot read) is stored. */
  async load(): Promise<BackboneChoice | null> {
    const value = await get<unknown>(KEY, this.store);
    if (!isStoredBackbone(value)) return null;
    const file = new File([value.bytes], value.fileName, { type: value.type, lastModified: value.lastModified });
    return { name: value.name, file };
  }

  /** Keeps `choice`; a choice without a file (the bundled default) is kept as nothing stored. */
  async save({ name, file }: BackboneChoice): Promise<void> {
    if (!file) {
      await this.forget();
      return;
    }
    const stored: StoredBackbone = { name, fileName: file.name, type: file.type, lastModified: file.lastModified, bytes: file };
    await set(KEY, stored, this.store);
  }

  async forget(): Promise<void> {
    await del(KEY, this.store);
  }
}
