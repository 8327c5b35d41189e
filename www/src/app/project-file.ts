// The project file (`.webtune`): one zip holding `manifest.json` (format, version, backbone,
// classes, the recipe, each picture's class and original name), the pictures' bytes as the page
// holds them (the file added, or the engine's compact copy once restored from storage, marked
// `compact` so that it is taken back as it is rather than compressed again), and the
// trained model's safetensors export when there is one. Written and read with zip.js; reading
// checks the whole manifest before anything on the page changes, so a bad file changes nothing.

import { BlobReader, BlobWriter, TextReader, TextWriter, ZipReader, ZipWriter, type Entry, type FileEntry } from '@zip.js/zip.js/lib/zip-core-native.js';
import { MAX_FILE_BYTES, type Recipe } from '../engine/protocol';
import { messageOf } from './context';
import type { FileProblem, HeldImage } from './state';
import type { Picked, PickedFile } from '../views/drop-zone';

export const PROJECT_FORMAT = 'webtune-project';
/** The version this page writes and the newest it reads. */
export const PROJECT_VERSION = 1;
const MANIFEST = 'manifest.json';
const MODEL_ENTRY = 'model.safetensors';
/** The model: the largest backbone (ResNet-50) with a head is about 100 MB. */
const MAX_MODEL_BYTES = 400 << 20;
const MAX_PICTURES = 200_000;

export interface ProjectPicture {
  /** Where its bytes are in the zip. */
  entry: string;
  label: string;
  /** Where it came from, as the page showed it (e.g. "cats/tom.jpg"), and its file name. */
  path: string;
  name: string;
  /** The bytes are the engine's compact copy of the picture (`HeldImage.compact`), not its original file. */
  compact?: boolean;
}

export interface ProjectModel {
  entry: string;
  /** The model's classes, in its output order. */
  classes: string[];
  /** Backbone units fine-tuned; 0: head only. */
  fineTuned: number;
}

export interface ProjectManifest {
  format: typeof PROJECT_FORMAT;
  version: number;
  savedAt: string;
  backbone: string;
  classes: string[];
  recipe: Recipe | null;
  pictures: ProjectPicture[];
  model: ProjectModel | null;
}

/** The file is not a project this page can open: nothing of it is used. */
export class ProjectRefused extends Error {}

export function isProjectName(name: string): boolean {
  return /\.webtune$/i.test(name);
}

/** Whether `file` is a webtune project: a `.webtune` file, or a zip with a project manifest at its top. */
export async function isProjectFile(file: File): Promise<boolean> {
  if (isProjectName(file.name)) return true;
  const reader = new ZipReader(new BlobReader(file), { useWebWorkers: false });
  try {
    const entries = await reader.getEntries({ filenameValidation: 'tolerant' });
    const manifest = entries.find((e): e is FileEntry => e.filename === MANIFEST && !e.directory);
    if (!manifest || manifest.uncompressedSize > 10 << 20) return false;
    const text = await manifest.getData(new TextWriter());
    return text.includes(`"${PROJECT_FORMAT}"`);
  } catch {
    return false;
  } finally {
    await reader.close().catch(() => {});
  }
}

/** A name safe inside the zip: the original's letters, without folders or odd characters. */
function entryName(index: number, name: string): string {
  const safe = name.replace(/[^\w.-]+/g, '_').slice(-80) || 'picture';
  return `pictures/${String(index).padStart(6, '0')}-${safe}`;
}

export interface ProjectContents {
  backbone: string;
  classes: string[];
  recipe: Recipe | null;
  images: HeldImage[];
  model: { bytes: Uint8Array; classes: string[]; fineTuned: number } | null;
}

/** The project file's bytes. */
export async function writeProject(contents: ProjectContents): Promise<Blob> {
  const writer = new ZipWriter(new BlobWriter('application/zip'), { useWebWorkers: false });
  const pictures: ProjectPicture[] = [];
  for (const [index, image] of contents.images.entries()) {
    const entry = entryName(index + 1, image.file.name);
    // Pictures are compressed already: storing them is as small and much faster.
    await writer.add(entry, new BlobReader(image.file), { level: 0 });
    const compact = image.compact !== null && image.file === image.compact;
    pictures.push({ entry, label: image.label, path: image.path, name: image.file.name, ...(compact ? { compact } : {}) });
  }
  let model: ProjectModel | null = null;
  if (contents.model) {
    await writer.add(MODEL_ENTRY, new BlobReader(new Blob([contents.model.bytes as Uint8Array<ArrayBuffer>])));
    model = { entry: MODEL_ENTRY, classes: contents.model.classes, fineTuned: contents.model.fineTuned };
  }
  const manifest: ProjectManifest = {
    format: PROJECT_FORMAT,
    version: PROJECT_VERSION,
    savedAt: new Date().toISOString(),
    backbone: contents.backbone,
    classes: contents.classes,
    recipe: contents.recipe,
    pictures,
    model,
  };
  await writer.add(MANIFEST, new TextReader(JSON.stringify(manifest, null, 2)));
  return writer.close();
}

const isText = (v: unknown): v is string => typeof v === 'string';

/** The class labels a webtune export's safetensors metadata lists, in the model's output order. */
export function exportLabels(bytes: Uint8Array): string[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) as { __metadata__?: { labels?: string } };
  const labels: unknown = JSON.parse(header.__metadata__?.labels ?? '[]');
  return Array.isArray(labels) ? labels.filter(isText) : [];
}

/** The manifest's fields, each checked; throws `ProjectRefused` naming the first that is wrong. */
export function checkManifest(value: unknown, fileName: string): ProjectManifest {
  const refuse = (why: string): never => {
    throw new ProjectRefused(`${fileName}: ${why}`);
  };
  if (typeof value !== 'object' || value === null) return refuse('not a webtune project (its manifest.json is not an object)');
  const m = value as Record<string, unknown>;
  if (m.format !== PROJECT_FORMAT) return refuse('not a webtune project (its manifest.json does not say "format": "webtune-project")');
  if (typeof m.version !== 'number' || !Number.isInteger(m.version) || m.version < 1) return refuse('the project\'s "version" is not a whole number from 1');
  if (m.version > PROJECT_VERSION) {
    return refuse(`made by a newer webtune (project version ${m.version}); this page opens version ${PROJECT_VERSION} and older`);
  }
  if (!isText(m.backbone)) return refuse('the project does not say which backbone it used');
  if (!Array.isArray(m.classes) || !m.classes.every((c) => isText(c) && c.trim() !== '')) return refuse('"classes" is not a list of class names');
  if (!Array.isArray(m.pictures)) return refuse('"pictures" is not a list');
  if (m.pictures.length > MAX_PICTURES) return refuse(`more than ${MAX_PICTURES} pictures`);
  const classes = m.classes as string[];
  for (const [i, p] of (m.pictures as unknown[]).entries()) {
    const picture = p as Record<string, unknown>;
    if (typeof p !== 'object' || p === null || !isText(picture.entry) || !isText(picture.label) || !isText(picture.name)) {
      return refuse(`picture ${i + 1} in the manifest has no "entry", "label" or "name"`);
    }
    if (!classes.includes(picture.label)) return refuse(`picture ${i + 1} is in class "${picture.label}", which "classes" does not list`);
  }
  if (m.recipe !== null && m.recipe !== undefined && typeof m.recipe !== 'object') return refuse('"recipe" is not an object');
  let model: ProjectModel | null = null;
  if (m.model !== null && m.model !== undefined) {
    const raw = m.model as Record<string, unknown>;
    if (typeof raw !== 'object' || !isText(raw.entry) || !Array.isArray(raw.classes) || !raw.classes.every(isText) || typeof raw.fineTuned !== 'number') {
      return refuse('"model" does not name its file, classes and fine-tuned blocks');
    }
    model = { entry: raw.entry, classes: raw.classes as string[], fineTuned: raw.fineTuned };
  }
  return {
    format: PROJECT_FORMAT,
    version: m.version,
    savedAt: isText(m.savedAt) ? m.savedAt : '',
    backbone: m.backbone,
    classes,
    recipe: (m.recipe as Recipe | undefined) ?? null,
    pictures: (m.pictures as ProjectPicture[]).map((p) => ({
      entry: p.entry,
      label: p.label,
      name: p.name,
      path: isText(p.path) ? p.path : `${p.label}/${p.name}`,
      // A wrong flag costs nothing: the engine takes bytes as a compact copy only if they are one.
      ...(p.compact === true ? { compact: true } : {}),
    })),
    model,
  };
}

export interface OpenedProject {
  manifest: ProjectManifest;
  /** The pictures as if picked: each goes through the page's normal add path. */
  picked: Picked;
  /** The trained model's export, or null (none saved, or its entry unreadable: then a problem says so). */
  model: Blob | null;
  modelProblem: string | null;
}

/** Reads a project file; throws `ProjectRefused` when it is not one this page can open. */
export async function readProject(file: File): Promise<OpenedProject> {
  const reader = new ZipReader(new BlobReader(file), { useWebWorkers: false });
  try {
    let entries: Entry[];
    try {
      entries = await reader.getEntries({ filenameValidation: 'tolerant' });
    } catch (error) {
      throw new ProjectRefused(`${file.name}: not a webtune project (not a readable zip file: ${messageOf(error)})`);
    }
    const byName = new Map(entries.filter((e): e is FileEntry => !e.directory).map((e) => [e.filename, e]));
    const manifestEntry = byName.get(MANIFEST);
    if (!manifestEntry) throw new ProjectRefused(`${file.name}: not a webtune project (it has no manifest.json)`);
    if (manifestEntry.uncompressedSize > 64 << 20) throw new ProjectRefused(`${file.name}: its manifest.json is too large to be a project's`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(await manifestEntry.getData(new TextWriter()));
    } catch (error) {
      throw new ProjectRefused(`${file.name}: its manifest.json cannot be read (${messageOf(error)})`);
    }
    const manifest = checkManifest(parsed, file.name);

    const files: PickedFile[] = [];
    const problems: FileProblem[] = [];
    for (const picture of manifest.pictures) {
      const entry = byName.get(picture.entry);
      if (!entry) {
        problems.push({ path: picture.path, reason: 'missing from the project file' });
        continue;
      }
      if (entry.uncompressedSize > MAX_FILE_BYTES) {
        problems.push({ path: picture.path, reason: `larger than ${MAX_FILE_BYTES >> 20} MB` });
        continue;
      }
      try {
        const blob = await entry.getData(new BlobWriter());
        const file = new File([blob], picture.name, picture.compact ? { type: 'image/jpeg' } : {});
        files.push({ label: picture.label, path: picture.path, file, ...(picture.compact ? { compact: true } : {}) });
      } catch (error) {
        problems.push({ path: picture.path, reason: `could not be read from the project file (${messageOf(error)})` });
      }
    }
    let model: Blob | null = null;
    let modelProblem: string | null = null;
    if (manifest.model) {
      const entry = byName.get(manifest.model.entry);
      if (!entry) modelProblem = 'its trained model is missing from the file';
      else if (entry.uncompressedSize > MAX_MODEL_BYTES) modelProblem = 'its trained model is too large';
      else {
        try {
          model = await entry.getData(new BlobWriter());
        } catch (error) {
          modelProblem = `its trained model could not be read (${messageOf(error)})`;
        }
      }
    }
    return { manifest, picked: { classes: manifest.classes, files, problems }, model, modelProblem };
  } finally {
    await reader.close().catch(() => {});
  }
}
