// The user's pictures and classes: the queue that gives each picked file to the engine (one at a
// time, so a crash names the file that caused it), removing them, and keeping them in the
// browser's storage so that a reload brings them back.

import type { DatasetSummary } from '../engine/protocol';
import { EngineError, EngineGone } from '../engine/trainer-client';
import type { Picked, PickedFile } from '../views/drop-zone';
import { EngineUnavailable, gpuGaveUp, messageOf, reasonOf, type AppContext } from './context';
import { sha256Hex } from './duplicates';
import { LibraryStore, storageProblem } from './library-store';
import { editsBlocked, idleTraining, isTraining, type AppState, type FileProblem, type HeldImage } from './state';

type AddJob = { kind: 'class'; label: string } | { kind: 'image'; picked: PickedFile };

/** Added pictures are stored in batches of at most this many, */
const SAVE_BATCH = 32;
/** or after this long, whichever comes first. */
const SAVE_DELAY_MS = 200;

export class Pictures {
  private nextKey = 1;
  private addQueue: AddJob[] = [];
  private addLoopRunning = false;
  private readonly library = new LibraryStore();
  /** Added pictures not yet given to the browser's storage (see `keepPicture`). */
  private unsaved: HeldImage[] = [];
  private saveTimer: ReturnType<typeof setTimeout> | null = null;
  /** Writes given to the browser's storage and not finished yet. */
  private writing = 0;

  constructor(private readonly ctx: AppContext) {}


  /** Queues picked classes and files; each file is added or reported as a problem. */
  addPicked({ classes, files, problems }: Picked): void {
    const known = new Set(this.ctx.state.classes);
    const jobs: AddJob[] = [
      ...classes.filter((label) => !known.has(label)).map((label): AddJob => ({ kind: 'class', label })),
      ...files.map((picked): AddJob => ({ kind: 'image', picked })),
    ];
    this.ctx.store.update((s) => {
      s.problems = [...s.problems, ...problems];
      s.adding += files.length;
    });
    this.addQueue.push(...jobs);
    void this.runAddLoop();
  }

  /** Works through the add queue, one job at a time; a second call while it runs does nothing. */
  async runAddLoop(): Promise<void> {
    if (this.addLoopRunning) return;
    this.addLoopRunning = true;
    try {
      while (this.addQueue.length > 0) {
        const job = this.addQueue[0];
        try {
          if (job.kind === 'class') await this.addClass(job.label);
          else await this.addImage(job.picked);
        } catch (error) {
          // No engine: keep the job until one starts (restart() runs the loop again).
          if (error instanceof EngineUnavailable) break;
          // A backend switch ended the worker mid-call, or the GPU gave up (and the engine is
          // restarting on the CPU): do this job again on the new one.
          if ((error instanceof EngineGone && !error.crashed) || gpuGaveUp(error)) continue;
          const path = job.kind === 'class' ? `${job.label}/` : job.picked.path;
          const reason =
            error instanceof EngineGone
              ? `the image decoder crashed on this file: ${error.message}`
              : job.kind === 'class'
                ? messageOf(error)
                : reasonOf(error);
          this.ctx.store.update((s) => {
            s.problems = [...s.problems, { path, reason }];
          });
        }
        this.addQueue.shift();
        if (job.kind === 'image') {
          this.ctx.store.update((s) => {
            s.adding -= 1;
          });
        }
      }
    } finally {
      this.addLoopRunning = false;
      this.saveUnsaved();
    }
  }

  private async addClass(label: string): Promise<void> {
    if (this.ctx.state.classes.includes(label)) return;
    const { summary } = await this.ctx.call({ type: 'addClass', label });
    this.ctx.store.update((s) => {
      s.classes = [...s.classes, label];
      s.summary = summary;
      s.trained = null;
    });
    this.keepClasses();
  }

  private async addImage(picked: PickedFile): Promise<void> {
    const key = this.nextKey++;
    const { summary, compact } = await this.ctx.call({
      type: 'addImage',
      key,
      label: picked.label,
      fileName: picked.file.name,
      file: picked.file,
      compact: picked.compact === true,
    });
    // A compact copy given is kept as it is (the engine then returns none).
    const image: HeldImage = { key, label: picked.label, path: picked.path, file: picked.file, compact: compact ?? (picked.compact ? picked.file : null) };
    const newClass = !this.ctx.state.classes.includes(image.label);
    this.ctx.store.update((s) => {
      s.images.set(image.key, image);
      s.picturesVersion += 1;
      if (newClass) s.classes = [...s.classes, image.label];
      s.summary = summary;
      s.trained = null;
    });
    // Only pictures the engine could decode are kept: the others are listed as problems.
    this.keepPicture(image);
    if (newClass) this.keepClasses();
    await this.hashPicture(image);
  }

  /**
   * Notes the hash of `image`'s compact copy, by which exact duplicates are shown (they stay
   * added): equal pixels give equal copies, whatever the files' formats, before a reload or after.
   */
  private async hashPicture(image: HeldImage): Promise<void> {
    if (!image.compact) return;
    let hash: string;
    try {
      hash = await sha256Hex(image.compact);
    } catch {
      return; // only a warning depends on it
    }
    this.ctx.store.update((s) => {
      s.pictureHashes.set(image.key, hash);
      s.hashesVersion += 1;
    });
  }

  async removeClass(label: string): Promise<void> {
    if (isTraining(this.ctx.state)) return;
    try {
      const { summary } = await this.ctx.call({ type: 'removeClass', label });
      const removed = [...this.ctx.state.images.values()].filter((image) => image.label === label).map((image) => image.key);
      this.ctx.store.update((s) => {
        s.classes = s.classes.filter((c) => c !== label);
        for (const key of removed) s.images.delete(key);
        s.picturesVersion += 1;
        s.summary = summary;
        s.trained = null;
      });
      this.keepClasses();
      this.persist(() => this.library.deletePictures(removed));
    } catch (error) {
      if (!(error instanceof EngineGone)) this.ctx.reportError(`Could not remove class "${label}": ${messageOf(error)}`);
    }
  }

  /** Why classes and pictures cannot be edited now (see `editsBlocked`), or null. */
  editBlocked(): string | null {
    return editsBlocked(this.ctx.state);
  }

  /** Adds an empty class by name; resolves to why it was not added, or null. */
  async addClassNamed(name: string): Promise<string | null> {
    const label = name.trim();
    if (this.ctx.state.classes.includes(label)) return `There is already a class named "${label}".`;
    const blocked = this.editBlocked();
    if (blocked) return blocked;
    return this.edit(`add class "${label}"`, async () => {
      const { summary } = await this.ctx.call({ type: 'addClass', label });
      this.ctx.store.update((s) => {
        s.classes = [...s.classes, label];
        s.summary = summary;
      });
      this.keepClasses();
    });
  }

  /**
   * Renames a class. The engine keeps every picture's features (they do not depend on names)
   * and renames the trained model's class too, so the model stays. Resolves to why not, or null.
   */
  async renameClass(from: string, to: string): Promise<string | null> {
    const blocked = this.editBlocked();
    if (blocked) return blocked;
    return this.edit(`rename class "${from}"`, async () => {
      const { summary, label } = await this.ctx.call({ type: 'renameClass', from, to });
      if (label === from) return;
      this.relabel(from, label, (image) => image.label === from, summary, { keepModel: true });
    });
  }

  /** Moves every picture of `from` into `into`; `from` is removed. Resolves to why not, or null. */
  async mergeClasses(from: string, into: string): Promise<string | null> {
    const blocked = this.editBlocked();
    if (blocked) return blocked;
    return this.edit(`merge class "${from}" into "${into}"`, async () => {
      const { summary } = await this.ctx.call({ type: 'mergeClasses', from, into });
      this.relabel(from, into, (image) => image.label === from, summary, { keepModel: false });
    });
  }

  /** Moves one picture to the class `label`. Resolves to why not, or null. */
  async movePicture(key: number, label: string): Promise<string | null> {
    const blocked = this.editBlocked();
    if (blocked) return blocked;
    return this.edit('move the picture', async () => {
      const { summary } = await this.ctx.call({ type: 'movePicture', key, label });
      this.relabel(null, label, (image) => image.key === key, summary, { keepModel: false });
    });
  }

  /** Removes one picture, here, in the engine and in the browser's storage. */
  async removePicture(key: number): Promise<string | null> {
    const blocked = this.editBlocked();
    if (blocked) return blocked;
    return this.edit('remove the picture', async () => {
      const { summary } = await this.ctx.call({ type: 'removePicture', key });
      this.ctx.store.update((s) => {
        s.images.delete(key);
        s.picturesVersion += 1;
        s.summary = summary;
        s.trained = null;
      });
      this.persist(() => this.library.deletePictures([key]));
    });
  }

  /**
   * Gives the pictures `which` picks the class `to` (and renames class `from` to it in the class
   * list, or drops `from` when `to` already exists), then stores the change in one go.
   */
  private relabel(
    from: string | null,
    to: string,
    which: (image: HeldImage) => boolean,
    summary: DatasetSummary,
    { keepModel }: { keepModel: boolean },
  ): void {
    const moved: HeldImage[] = [];
    this.ctx.store.update((s) => {
      for (const image of s.images.values()) {
        if (!which(image)) continue;
        const relabelled = { ...image, label: to };
        s.images.set(image.key, relabelled);
        moved.push(relabelled);
      }
      s.picturesVersion += 1;
      if (from !== null) {
        s.classes = s.classes.includes(to) ? s.classes.filter((c) => c !== from) : s.classes.map((c) => (c === from ? to : c));
      }
      s.summary = summary;
      if (!keepModel) s.trained = null;
      // The model was renamed with the class: so are its results on show.
      else if (from !== null) renameInResults(s, from, to);
    });
    const classes = this.ctx.state.classes;
    this.persist(() => this.library.relabel(moved, classes));
  }

  /** Runs one edit in the engine; resolves to why it failed (in the engine's words), or null. */
  private async edit(what: string, change: () => Promise<void>): Promise<string | null> {
    try {
      await change();
      return null;
    } catch (error) {
      if (error instanceof EngineError) return `Could not ${what}: ${reasonOf(error)}`;
      if (error instanceof EngineUnavailable || error instanceof EngineGone) {
        return `Could not ${what}: the training engine is not running (${messageOf(error)}).`;
      }
      this.ctx.reportError(`Could not ${what}: ${messageOf(error)}`);
      return messageOf(error);
    }
  }

  clearProblems(): void {
    this.ctx.store.update((s) => {
      s.problems = [];
    });
  }

  /** Removes every class and picture, here, in the engine and in the browser's storage. */
  async clearAll(): Promise<void> {
    if (isTraining(this.ctx.state) || this.ctx.state.adding > 0) return;
    const labels = this.ctx.state.classes;
    this.persist(() => this.library.clear());
    this.ctx.store.update((s) => {
      s.classes = [];
      s.images.clear();
      s.pictureHashes.clear();
      s.picturesVersion += 1;
      s.hashesVersion += 1;
      s.problems = [];
      s.training = idleTraining();
      s.trained = null;
      s.predictions = [];
      s.library = { ...s.library, restored: 0 };
    });
    // Waits for the engine to have had everything it is being given back, then empties it.
    for (const label of labels) {
      try {
        const { summary } = await this.ctx.call({ type: 'removeClass', label });
        this.ctx.store.update((s) => {
          s.summary = summary;
        });
      } catch (error) {
        // A new engine starts from the (now empty) pictures the page holds.
        if (error instanceof EngineUnavailable || error instanceof EngineGone) return;
        this.ctx.reportError(`Could not remove class "${label}" from the training engine: ${messageOf(error)}`);
      }
    }
  }

  /** Forgets a held picture, in the browser's storage too, saying why. */
  dropHeld(key: number, problem: FileProblem): void {
    this.setAside(key, problem);
    this.persist(() => this.library.deletePictures([key]));
  }

  /** Leaves a held picture out of this visit, saying why; the browser's storage keeps it. */
  setAside(key: number, problem: FileProblem): void {
    this.ctx.store.update((s) => {
      s.images.delete(key);
      s.picturesVersion += 1;
      s.problems = [...s.problems, problem];
    });
  }

  /**
   * The engine made its own compact copy of a picture given to it again: one an earlier version
   * of the page stored as its original file, or a copy the engine could not take as it was. From
   * now on the browser's storage keeps the engine's copy.
   */
  gotCompact(key: number, compact: Blob): void {
    const held = this.ctx.state.images.get(key);
    if (!held) return;
    const image = { ...held, compact };
    this.ctx.store.update((s) => {
      s.images.set(key, image);
    });
    this.keepPicture(image);
    void this.hashPicture(image);
  }

  /** Stores the pictures waiting for their batch now (the page is going away). */
  flush(): void {
    this.saveUnsaved();
  }


  /** Puts the stored pictures and classes back in the state; the engine is given them on start. */
  async restoreLibrary(): Promise<void> {
    let stored;
    try {
      stored = await this.library.load();
    } catch (error) {
      this.storageFailed(error);
      return;
    }
    const images = new Map(stored.images.map((image) => [image.key, image]));
    this.nextKey = stored.images.reduce((next, image) => Math.max(next, image.key + 1), this.nextKey);
    this.ctx.store.update((s) => {
      s.classes = stored.classes;
      s.images = images;
      s.picturesVersion += 1;
      s.library = { ...s.library, status: 'saving', restored: images.size, problem: null, partial: false };
    });
    // Hashed beside the engine's start, not before it.
    void (async () => {
      for (const image of [...images.values()].sort((a, b) => a.key - b.key)) await this.hashPicture(image);
    })();
  }

  /**
   * Stores an added picture with the next batch: a transaction per picture cost about a
   * millisecond of the page's main thread each, and more of the browser's. A failed batch
   * (storage full) leaves all of its pictures in memory only.
   */
  private keepPicture(image: HeldImage): void {
    // After a failed write (storage full), new pictures stay in memory; removals still go through.
    if (this.ctx.state.library.status === 'memory') return;
    this.unsaved.push(image);
    if (this.unsaved.length >= SAVE_BATCH) this.saveUnsaved();
    else {
      this.saveTimer ??= setTimeout(() => this.saveUnsaved(), SAVE_DELAY_MS);
      this.showStoring();
    }
  }

  private saveUnsaved(): void {
    if (this.saveTimer !== null) clearTimeout(this.saveTimer);
    this.saveTimer = null;
    if (this.unsaved.length === 0) return;
    const images = this.unsaved;
    this.unsaved = [];
    this.track(this.library.savePictures(images));
  }

  private keepClasses(): void {
    const classes = this.ctx.state.classes;
    this.persist(() => this.library.saveClasses(classes));
  }

  private persist(write: () => Promise<void>): void {
    // Pictures waiting for their batch are written first: transactions run in the order they are
    // made, so a removal or a relabel never comes before the picture's own write.
    this.saveUnsaved();
    this.track(write());
  }

  /** Counts a write until the browser has finished it; a failure says so on the page. */
  private track(write: Promise<void>): void {
    this.writing += 1;
    this.showStoring();
    write
      .catch((error: unknown) => this.storageFailed(error))
      .finally(() => {
        this.writing -= 1;
        this.showStoring();
      });
  }

  private showStoring(): void {
    const storing = this.writing + this.unsaved.length;
    if (storing === this.ctx.state.library.storing) return;
    this.ctx.store.update((s) => {
      s.library = { ...s.library, storing };
    });
  }

  /** The first failure says so on the page; from then on the pictures are kept in memory only. */
  private storageFailed(error: unknown): void {
    if (this.ctx.state.library.status === 'memory') return;
    const problem = storageProblem(error);
    this.ctx.store.update((s) => {
      s.library = { ...s.library, status: 'memory', problem, partial: s.library.status === 'saving' };
    });
  }
}

/** The last run's evaluation and the predictions shown, with class `from` called `to`. */
function renameInResults(s: AppState, from: string, to: string): void {
  const name = (label: string) => (label === from ? to : label);
  const evaluation = s.training.evaluation;
  if (evaluation) {
    s.training = {
      ...s.training,
      evaluation: {
        ...evaluation,
        classes: evaluation.classes.map((c) => ({ ...c, label: name(c.label) })),
        misclassified: evaluation.misclassified.map((m) => ({ ...m, trueLabel: name(m.trueLabel), predictedLabel: name(m.predictedLabel) })),
      },
    };
  }
  s.predictions = s.predictions.map((p) => (p.predictions ? { ...p, predictions: p.predictions.map((q) => ({ ...q, label: name(q.label) })) } : p));
}
