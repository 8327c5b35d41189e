// Turning dropped or picked folders into labelled files, by the labelling rule the CLI and zips
// follow (app/labels.ts); files outside any class folder need a class given by the drop target.

import { belowRoot, components, inPathOrder, isSkippedName, mergedSpellings, place, wrappingFolder } from '../app/labels';
import type { FileProblem } from '../app/state';
import { isZipName } from './zip-input';
import { messageOf } from '../app/context';

export interface PickedFile {
  label: string;
  /** Path as shown to the user, e.g. "cats/tom.jpg". */
  path: string;
  file: File;
  /** `file` is the engine's compact copy of a picture (from a project file), not an original. */
  compact?: boolean;
}

export interface Picked {
  /** Every class the pick names, including folders with no usable pictures. */
  classes: string[];
  files: PickedFile[];
  problems: FileProblem[];
}

/**
 * Labels files by the one rule of app/labels.ts from their paths below the dataset's root, or puts
 * them all in class `label` (a drop onto a class card). `path`: "class/…/file.jpg"-style,
 * "/"-separated.
 */
function labelled(entries: { path: string; file: File }[], label?: string): Picked {
  const picked: Picked = { classes: label ? [label] : [], files: [], problems: [] };
  // In the CLI's path order, whatever order the browser lists them in: the seeded split depends
  // on the order pictures are added, so a seed then gives the same split in every browser and in
  // the native CLI.
  const ordered = inPathOrder(
    entries.map((entry) => ({ ...entry, parts: components(entry.path) })),
    (entry) => entry.parts.join('/'),
  );
  const placed: PickedFile[] = [];
  for (const { path, parts, file } of ordered) {
    const placement = place(path);
    if (placement.kind === 'ignored') continue;
    if (label) placed.push({ label, path: `${label}/${file.name}`, file });
    else if (placement.kind === 'class') placed.push({ label: placement.label, path: parts.join('/'), file });
    else picked.problems.push({ path, reason: parts.length === 1 ? NOT_IN_A_CLASS_FOLDER : placement.why });
  }
  // Folders whose names read as one label ("cat" and "cat ") are not merged silently.
  const merged = mergedSpellings(label ? [] : placed.map((file) => ({ folder: components(file.path)[0], label: file.label })));
  for (const file of placed) {
    const sentence = merged.get(file.label);
    if (sentence) {
      picked.problems.push({ path: file.path, reason: `not added: ${sentence}; rename them so that they differ` });
      continue;
    }
    picked.files.push(file);
    if (!picked.classes.includes(file.label)) picked.classes.push(file.label);
  }
  return picked;
}

const NOT_IN_A_CLASS_FOLDER =
  'not inside a class folder (pick or drop the folder whose sub-folders are the classes, or drop the file onto a class)';

/**
 * Files from an `<input type=file webkitdirectory>` (or a plain multi-file input). The picked
 * folder is the dataset's root, as the folder given to the CLI: its name is not a class, and
 * neither is a folder wrapping everything below it.
 */
export function pickedFromInput(files: FileList | File[], label?: string): Picked {
  const paths = [...files].map((file) => {
    const relative = file.webkitRelativePath;
    return { path: relative ? belowRoot(relative, components(relative)[0]) : file.name, file };
  });
  return labelled(unwrapped(paths).entries, label);
}

/** The entries below the folder wrapping them all, if there is one (see `wrappingFolder`), and its name. */
function unwrapped(entries: { path: string; file: File }[]): { root: string | null; entries: { path: string; file: File }[] } {
  const root = wrappingFolder(entries.map(({ path }) => path));
  return { root, entries: entries.map(({ path, file }) => ({ path: belowRoot(path, root), file })) };
}

function readEntries(reader: FileSystemDirectoryReader): Promise<FileSystemEntry[]> {
  return new Promise((resolve, reject) => reader.readEntries(resolve, reject));
}

function fileOf(entry: FileSystemFileEntry): Promise<File> {
  return new Promise((resolve, reject) => entry.file(resolve, reject));
}

interface Found {
  entries: { path: string; file: File }[];
  /** Paths of folders with nothing in them: class folders among them are classes still to be filled. */
  emptyFolders: string[];
  problems: FileProblem[];
}

async function walk(entry: FileSystemEntry, found: Found): Promise<void> {
  const relativePath = entry.fullPath.replace(/^\//, '');
  try {
    if (entry.isFile) {
      found.entries.push({ path: relativePath, file: await fileOf(entry as FileSystemFileEntry) });
    } else if (entry.isDirectory && !isSkippedName(entry.name)) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      let children = 0;
      // readEntries hands out a directory in batches until it returns an empty one.
      for (let batch = await readEntries(reader); batch.length > 0; batch = await readEntries(reader)) {
        children += batch.length;
        for (const child of batch) await walk(child, found);
      }
      if (children === 0) found.emptyFolders.push(relativePath);
    }
  } catch (error) {
    found.problems.push({ path: relativePath, reason: couldNotBeRead(error) });
  }
}

function couldNotBeRead(error: unknown): string {
  return `could not be read (${messageOf(error)})`;
}

/**
 * Walks a folder picked with `showDirectoryPicker`; paths are below it, as an input's are below
 * the picked folder. Every file arrives in a task of its own, so a folder of thousands of pictures
 * never holds the page up the way an input's file list does (Chromium builds that in one task).
 */
async function walkHandle(directory: FileSystemDirectoryHandle, path: string, found: Found): Promise<void> {
  let children = 0;
  try {
    for await (const handle of directory.values()) {
      children += 1;
      const childPath = path ? `${path}/${handle.name}` : handle.name;
      if (handle.kind === 'directory') {
        if (!isSkippedName(handle.name)) await walkHandle(handle as FileSystemDirectoryHandle, childPath, found);
        continue;
      }
      try {
        found.entries.push({ path: childPath, file: await (handle as FileSystemFileHandle).getFile() });
      } catch (error) {
        found.problems.push({ path: childPath, reason: couldNotBeRead(error) });
      }
    }
  } catch (error) {
    found.problems.push({ path: path || directory.name, reason: couldNotBeRead(error) });
  }
  if (children === 0 && path) found.emptyFolders.push(path);
}

/** Labels what a walk found, as a zip of it would be: a folder wrapping everything is not a class. */
function pickedFromFound(found: Found, label?: string): Picked {
  const { root, entries: below } = unwrapped(found.entries);
  const picked = labelled(below, label);
  const empty = label
    ? []
    : found.emptyFolders
        .map((path) => components(belowRoot(path, root)))
        .filter((parts) => parts.length === 1 && !isSkippedName(parts[0]))
        .map(([name]) => name.trim())
        .filter((name) => name.length > 0 && !picked.classes.includes(name));
  return {
    classes: [...picked.classes, ...empty],
    files: picked.files,
    problems: [...found.problems, ...picked.problems],
  };
}

/** Files from a folder picked with `showDirectoryPicker`, which is the dataset's root. */
export async function pickedFromDirectory(directory: FileSystemDirectoryHandle): Promise<Picked> {
  const found: Found = { entries: [], emptyFolders: [], problems: [] };
  await walkHandle(directory, '', found);
  return pickedFromFound(found);
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
  return pickedFromFound(found, label);
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

type DirectoryPicker = (options?: { id?: string; mode?: 'read' | 'readwrite' }) => Promise<FileSystemDirectoryHandle>;

/** `window.showDirectoryPicker` where the browser has it (File System Access: Chromium-based ones). */
function directoryPicker(): DirectoryPicker | null {
  const picker = (window as Window & { showDirectoryPicker?: DirectoryPicker }).showDirectoryPicker;
  return typeof picker === 'function' ? picker.bind(window) : null;
}

/**
 * The dataset drop zone and folder button: folders whose sub-folders are the classes; zip files
 * dropped at the top go to `onZips` (zip-input.ts), everything else is walked as folders. Where
 * the browser has `showDirectoryPicker`, the button asks for the folder that way (its files then
 * arrive one by one, `walkHandle`); elsewhere, and after the picker once fails, the input's own
 * dialog picks it.
 */
export function mountDropZone(
  zone: HTMLElement,
  input: HTMLInputElement,
  onPicked: (picked: Picked) => void,
  onZips: (zips: File[]) => void,
  onError: (text: string) => void,
): void {
  const anything = (picked: Picked) => picked.files.length + picked.classes.length + picked.problems.length > 0;
  const report = (picked: Picked) => {
    if (anything(picked)) onPicked(picked);
  };
  acceptDrops(zone, (data) => {
    const zips = [...data.files].filter((file) => isZipName(file.name));
    void pickedFromDrop(data, undefined, zips.length > 0).then(report);
    if (zips.length > 0) onZips(zips);
  });
  let pickerFailed = false;
  input.addEventListener('click', (event) => {
    const picker = pickerFailed ? null : directoryPicker();
    if (!picker) return;
    event.preventDefault();
    picker({ id: 'webtune-dataset', mode: 'read' }).then(
      async (directory) => {
        const picked = await pickedFromDirectory(directory);
        if (anything(picked)) onPicked(picked);
        else onError(`The folder “${directory.name}” has nothing in it to add.`);
      },
      (error: unknown) => {
        // Closing the dialog is not an error.
        if (error instanceof DOMException && error.name === 'AbortError') return;
        pickerFailed = true;
        onError(`The folder could not be opened (${messageOf(error)}). Choose it again: the browser's other folder dialog will open.`);
      },
    );
  });
  input.addEventListener('change', () => {
    if (input.files && input.files.length > 0) onPicked(pickedFromInput(input.files));
    input.value = '';
  });
}
