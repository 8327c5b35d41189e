// Turning dropped or picked folders into labelled files. The class label of a file is the name
// of the folder it sits in; files outside any folder need a class given by the drop target.

import type { FileProblem } from '../app/state';
import { isZipName } from './zip-input';

export interface PickedFile {
  label: string;
  /** Path as shown to the user, e.g. "cats/tom.jpg". */
  path: string;
  file: File;
}

export interface Picked {
  /** Every class the pick names, including folders with no usable pictures. */
  classes: string[];
  files: PickedFile[];
  problems: FileProblem[];
}

/** Operating-system clutter that is never a picture and not worth a complaint. */
function isClutter(parts: string[]): boolean {
  const name = parts[parts.length - 1];
  return (
    parts.some((part) => part.startsWith('.') || part === '__MACOSX') ||
    name === 'Thumbs.db' ||
    name === 'desktop.ini'
  );
}

/**
 * Labels files by their parent folder; `label` overrides that (a drop onto a class row).
 * `relativePath` is "root/class/file.jpg"-style, "/"-separated, no leading slash.
 */
function labelled(entries: { relativePath: string; file: File }[], label?: string): Picked {
  const picked: Picked = { classes: label ? [label] : [], files: [], problems: [] };
  // In path order, whatever order the browser lists them in: the seeded split depends on the
  // order pictures are added, so a seed then gives the same split in every browser and in the
  // native CLI (which sorts too).
  const ordered = entries
    .map((entry) => ({ ...entry, parts: entry.relativePath.split('/').filter((part) => part.length > 0) }))
    .sort((a, b) => comparePaths(a.parts, b.parts));
  for (const { parts, file } of ordered) {
    if (parts.length === 0 || isClutter(parts)) continue;
    const parent = parts.length >= 2 ? parts[parts.length - 2].trim() : undefined;
    const classLabel = label ?? parent;
    const path = parent ? `${parent}/${file.name}` : file.name;
    if (!classLabel) {
      picked.problems.push({
        path,
        reason: 'not inside a class folder (drop a folder whose sub-folders are the classes, or drop the file onto a class)',
      });
      continue;
    }
    picked.files.push({ label: classLabel, path: label ? `${label}/${file.name}` : path, file });
    if (!picked.classes.includes(classLabel)) picked.classes.push(classLabel);
  }
  return picked;
}

/** Component by component, by code unit (as Rust sorts paths), not by locale. */
function comparePaths(a: string[], b: string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  }
  return a.length - b.length;
}

/** Files from an `<input type=file webkitdirectory>` (or a plain multi-file input). */
export function pickedFromInput(files: FileList | File[], label?: string): Picked {
  return labelled(
    [...files].map((file) => ({ relativePath: file.webkitRelativePath || file.name, file })),
    label,
  );
}

function readEntries(reader: FileSystemDirectoryReader): Promise<FileSystemEntry[]> {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

function fileOf(entry: FileSystemFileEntry): Promise<File> {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

interface Found {
  entries: { relativePath: string; file: File }[];
  /** Folders with nothing in them: classes still to be filled. */
  emptyFolders: string[];
  problems: FileProblem[];
}

async function walk(entry: FileSystemEntry, found: Found): Promise<void> {
  const relativePath = entry.fullPath.replace(/^\//, '');
  try {
    if (entry.isFile) {
      found.entries.push({ relativePath, file: await fileOf(entry as FileSystemFileEntry) });
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      let children = 0;
      // readEntries hands out a directory in batches until it returns an empty one.
      for (let batch = await readEntries(reader); batch.length > 0; batch = await readEntries(reader)) {
        children += batch.length;
        for (const child of batch) await walk(child, found);
      }
      if (children === 0 && !entry.name.startsWith('.')) found.emptyFolders.push(entry.name);
    }
  } catch (error) {
    found.problems.push({ path: relativePath, reason: `could not be read (${error instanceof Error ? error.message : String(error)})` });
  }
}

/** Files from a drop, walking any folders in it. */
export async function pickedFromDrop(data: DataTransfer, label?: string, skipZips = false): Promise<Picked> {
  // Entries must be taken before the first await: the DataTransfer is emptied after the event.
  const entries = [...data.items]
    .filter((item) => item.kind === 'file')
    .map((item) => item.webkitGetAsEntry())
    .filter((entry): entry is FileSystemEntry => entry !== null)
    .filter((entry) => !(skipZips && entry.isFile && isZipName(entry.name)));
  if (entries.length === 0) {
    return pickedFromInput([...data.files].filter((file) => !(skipZips && isZipName(file.name))), label);
  }
  const found: Found = { entries: [], emptyFolders: [], problems: [] };
  for (const entry of entries) await walk(entry, found);
  const picked = labelled(found.entries, label);
  const empty = label ? [] : found.emptyFolders.filter((name) => !picked.classes.includes(name));
  return {
    classes: [...picked.classes, ...empty],
    files: picked.files,
    problems: [...found.problems, ...picked.problems],
  };
}

/** Makes `element` accept drops (highlighting while dragged over) and hands them to `onDrop`. */
export function acceptDrops(element: HTMLElement, onDrop: (data: DataTransfer) => void): void {
  let depth = 0;
  element.addEventListener('dragenter', (event) => {
    event.preventDefault();
    event.stopPropagation();
    depth += 1;
    element.classList.add('drag-over');
  });
  element.addEventListener('dragover', (event) => {
    event.preventDefault();
    event.stopPropagation();
    if (event.dataTransfer) event.dataTransfer.dropEffect = 'copy';
  });
  element.addEventListener('dragleave', (event) => {
    event.stopPropagation();
    depth = Math.max(0, depth - 1);
    if (depth === 0) element.classList.remove('drag-over');
  });
  element.addEventListener('drop', (event) => {
    event.preventDefault();
    event.stopPropagation();
    depth = 0;
    element.classList.remove('drag-over');
    if (event.dataTransfer) onDrop(event.dataTransfer);
  });
}

/**
 * The dataset drop zone and folder input: folders whose sub-folders are the classes; zip files
 * dropped at the top go to `onZips` (zip-input.ts), everything else is walked as folders.
 */
export function mountDropZone(
  zone: HTMLElement,
  input: HTMLInputElement,
  onPicked: (picked: Picked) => void,
  onZips: (zips: File[]) => void = () => {},
): void {
  acceptDrops(zone, (data) => {
    const zips = [...data.files].filter((file) => isZipName(file.name));
    void pickedFromDrop(data, undefined, zips.length > 0).then((picked) => {
      if (picked.files.length + picked.classes.length + picked.problems.length > 0) onPicked(picked);
    });
    if (zips.length > 0) onZips(zips);
  });
  input.addEventListener('change', () => {
    if (input.files && input.files.length > 0) onPicked(pickedFromInput(input.files));
    input.value = '';
  });
}
