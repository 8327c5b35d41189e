// A zip of class folders, dropped or picked, read in the browser one entry at a time (zip.js
// reads the central directory, then inflates each picture on its own from the File, so a big zip
// is never held in memory whole). Labels follow the native CLI's zip reader
// (src/bin/webtune/labelled_files.rs and src/data/labels.rs): an optional wrapping folder, the
// class is the first folder below it, hidden entries and `__MACOSX` are skipped silently, unsafe
// names, encrypted and duplicated entries are listed with the reason (see app/labels.ts).

import { BlobReader, BlobWriter, ZipReader, type Entry, type FileEntry } from '@zip.js/zip.js/lib/zip-core-native.js';
import { belowRoot, components, inPathOrder, mergedSpellings, place, wrappingFolder } from '../app/labels';
import type { FileProblem } from '../app/state';
import type { Picked, PickedFile } from './drop-zone';
import { messageOf } from '../app/context';
import { MAX_FILE_BYTES } from '../engine/protocol';

/** As the CLI's limit on the entries a dataset may list. */
const MAX_ENTRIES = 200_000;

/** Zips, and project files (`.webtune`, zips too), which main.ts opens as projects. */
export function isZipName(name: string): boolean {
  return /\.(zip|webtune)$/i.test(name);
}

/** The whole zip could not be read: nothing of it is added. */
export class ZipRefused extends Error {}

/**
 * The labelled pictures of `zip`. `onProgress(done, total)` follows the reading of the labelled
 * entries. Throws `ZipRefused` when the zip as a whole cannot be read.
 */
export async function pickedFromZip(zip: File, onProgress: (done: number, total: number) => void = () => {}): Promise<Picked> {
  const reader = new ZipReader(new BlobReader(zip), { useWebWorkers: false });
  try {
    let entries: Entry[];
    try {
      // Names are checked here, as the CLI does: an unsafe one is listed, the rest of the zip read.
      entries = await reader.getEntries({ filenameValidation: 'tolerant' });
    } catch (error) {
      throw new ZipRefused(`${zip.name}: not a readable zip file (truncated or damaged?): ${messageOf(error)}`);
    }
    if (entries.length === 0) throw new ZipRefused(`${zip.name}: the zip file is empty`);
    if (entries.length > MAX_ENTRIES) throw new ZipRefused(`${zip.name}: more than ${MAX_ENTRIES} entries in the zip`);

    const problems: FileProblem[] = [];
    const counts = new Map<string, number>();
    for (const entry of entries) counts.set(entry.filename, (counts.get(entry.filename) ?? 0) + 1);
    for (const [name, count] of counts) {
      if (count > 1) problems.push({ path: name, reason: `appears ${count} times in the zip, so which copy is meant is unclear` });
    }
    const listed: FileEntry[] = [];
    for (const entry of entries) {
      if (entry.directory || (counts.get(entry.filename) ?? 0) > 1) continue;
      const name = entry.filename;
      const unsafe = name.includes('\\') || name.startsWith('/') || /^[A-Za-z]:/.test(name) || components(name).includes('..');
      if (unsafe) problems.push({ path: name, reason: 'unsafe name in the zip (an absolute path, `..`, or a backslash)' });
      else if (entry.encrypted) {
        problems.push({ path: name, reason: 'encrypted in the zip (webtune cannot ask for passwords: zip it again without one)' });
      } else listed.push(entry);
    }

    const root = wrappingFolder(listed.map((entry) => entry.filename));
    const labelled: { entry: FileEntry; name: string; label: string }[] = [];
    for (const entry of listed) {
      const name = belowRoot(entry.filename, root);
      const placement = place(name);
      if (placement.kind === 'unlabelled') problems.push({ path: name, reason: placement.why });
      if (placement.kind === 'class') labelled.push({ entry, name, label: placement.label });
    }
    // Class folders whose names differ only by surrounding spaces would merge silently.
    const [merged] = mergedSpellings(labelled.map(({ name, label }) => ({ folder: components(name)[0], label }))).values();
    if (merged) throw new ZipRefused(`${zip.name}: ${merged}; rename them so that they differ`);

    const files: PickedFile[] = [];
    const classes: string[] = [];
    // In the CLI's path order, as folders: a seed then gives the same split everywhere.
    for (const [index, { entry, name, label }] of inPathOrder(labelled, ({ name }) => name).entries()) {
      onProgress(index, labelled.length);
      if (entry.uncompressedSize > MAX_FILE_BYTES) {
        problems.push({ path: name, reason: `file too large (at most ${MAX_FILE_BYTES >> 20} MB)` });
        continue;
      }
      try {
        const blob = await entry.getData(new BlobWriter());
        const fileName = name.slice(name.lastIndexOf('/') + 1);
        files.push({ label, path: name, file: new File([blob], fileName, { lastModified: entry.lastModDate.getTime() }) });
        if (!classes.includes(label)) classes.push(label);
      } catch (error) {
        problems.push({ path: name, reason: `could not be read from the zip: ${messageOf(error)}` });
      }
    }
    onProgress(labelled.length, labelled.length);
    return { classes, files, problems };
  } finally {
    await reader.close().catch(() => {});
  }
}

/**
 * Reads each zip in turn and hands its pictures on; a zip that cannot be read is reported and
 * changes nothing. `status` shows which zip is being read and how far.
 */
export function readZips(
  zips: File[],
  status: HTMLElement,
  onPicked: (picked: Picked) => void,
  reportError: (text: string) => void,
): Promise<void> {
  const run = async () => {
    for (const zip of zips) {
      status.hidden = false;
      status.dataset.reading = zip.name;
      status.textContent = `Reading ${zip.name}…`;
      try {
        const picked = await pickedFromZip(zip, (done, total) => {
          status.textContent = `Reading ${zip.name}: ${done} of ${total} pictures…`;
        });
        onPicked(picked);
      } catch (error) {
        reportError(error instanceof ZipRefused ? error.message : `${zip.name}: could not be read: ${messageOf(error)}`);
      }
    }
    status.hidden = true;
    delete status.dataset.reading;
    status.textContent = '';
  };
  return run();
}

/** The "Choose a zip…" input. */
export function mountZipInput(input: HTMLInputElement, onZips: (zips: File[]) => void): void {
  input.addEventListener('change', () => {
    if (input.files && input.files.length > 0) onZips([...input.files]);
    input.value = '';
  });
}
