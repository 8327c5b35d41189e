// The one labelling rule, as the engine and the CLI apply it (src/data/labels.rs): below the
// dataset's root (and a folder wrapping everything, as "compress this folder" makes), the class
// is the first folder at any depth; hidden entries, `__MACOSX` and system clutter are skipped
// silently; files at the top and `..` paths are reported. Folder picks, folder drops and zips all
// label through here, so one tree gets the same classes whichever way it arrives.

const CLUTTER = ['Thumbs.db', 'desktop.ini'];

export type Placement = { kind: 'class'; label: string } | { kind: 'ignored' } | { kind: 'unlabelled'; why: string };

export function components(path: string): string[] {
  return path.split('/').filter((part) => part.length > 0 && part !== '.');
}

/** Whether a folder or file of this name is skipped silently: hidden, or macOS's `__MACOSX`. */
export function isSkippedName(name: string): boolean {
  return name.startsWith('.') || name === '__MACOSX';
}

/** `webtune::data::place`: where the file at `path` (below the dataset's root) belongs. */
export function place(path: string): Placement {
  const parts = components(path);
  if (parts.length === 0) return { kind: 'ignored' };
  if (parts.includes('..')) return { kind: 'unlabelled', why: "its path leaves the dataset's folder (`..`)" };
  const file = parts[parts.length - 1];
  if (parts.some(isSkippedName) || CLUTTER.includes(file)) return { kind: 'ignored' };
  if (parts.length < 2) return { kind: 'unlabelled', why: 'at the top of the dataset, not in a class folder' };
  const label = parts[0].trim();
  return label ? { kind: 'class', label } : { kind: 'unlabelled', why: "its class folder's name is blank" };
}

/** `webtune::data::wrapping_folder`: the folder a zip made from a folder wraps everything in. */
export function wrappingFolder(paths: string[]): string | null {
  let shared: string | null = null;
  for (const path of paths) {
    if (place(path).kind === 'ignored') continue;
    const parts = components(path);
    if (parts.length < 3 || (shared !== null && shared !== parts[0])) return null;
    shared = parts[0];
  }
  return shared;
}

/** `path` without its first component `root` (when it has it), "/"-joined. */
export function belowRoot(path: string, root: string | null): string {
  const parts = components(path);
  return (root !== null && parts[0] === root ? parts.slice(1) : parts).join('/');
}

/**
 * `webtune::data::label_collisions`: class folders whose names differ but read as one label once
 * trimmed ("cat" and "cat "), which would merge silently. `classFolders`: each labelled path's
 * first component (the raw folder name) with its label. Maps each merged label to a sentence
 * naming its folders.
 */
export function mergedSpellings(classFolders: Iterable<{ folder: string; label: string }>): Map<string, string> {
  const spellings = new Map<string, Set<string>>();
  for (const { folder, label } of classFolders) spellings.set(label, (spellings.get(label) ?? new Set()).add(folder));
  const merged = new Map<string, string>();
  for (const [label, folders] of spellings) {
    if (folders.size < 2) continue;
    merged.set(label, `class folders ${[...folders].map((folder) => `"${folder}"`).sort().join(' and ')} all read as "${label}"`);
  }
  return merged;
}

const UTF8 = new TextEncoder();

/**
 * `items` in the order `webtune::data` lists a dataset's files (`list_dataset`: by the UTF-8
 * bytes of each path below the root), so that a seed gives the same split in the page as in the
 * CLI. `pathOf`: an item's "/"-separated path below the root.
 */
export function inPathOrder<T>(items: T[], pathOf: (item: T) => string): T[] {
  const keyed = items.map((item) => ({ item, key: UTF8.encode(pathOf(item)) }));
  keyed.sort((a, b) => compareBytes(a.key, b.key));
  return keyed.map(({ item }) => item);
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}
