// Checkpoints: the model after phase 1 and after each fine-tuning epoch, as the engine exports it
// (a webtune .safetensors), kept in the browser's IndexedDB while a run goes on. A run that ends
// (done or stopped) forgets it; one cut short by a reload or an engine crash leaves it, and the
// page offers to continue: the engine restarts with that export as its weights, whose backbone it
// uses and whose head phase 1 continues from when the classes match (see `Session::new`).

import { createStore, del, get, set, type UseStore } from 'idb-keyval';
import type { BackboneName, Checkpoint, Phase } from '../engine/protocol';
import { backboneInfo } from './backbones';
import type { AppContext } from './context';
import type { BackboneChoice } from './state';

const KEY = 'last';

/** What the page shows of a kept checkpoint. */
export interface CheckpointInfo {
  backboneName: BackboneName;
  phase: Phase;
  /** The epoch of `phase` it was taken after (1-based). */
  epoch: number;
  classes: string[];
  savedAt: number;
  /** Whether the engine was restarted from it since (the offer is then not shown again). */
  continued: boolean;
}

interface StoredCheckpoint extends Omit<CheckpointInfo, 'continued'> {
  model: Blob;
}

function isStored(value: unknown): value is StoredCheckpoint {
  const c = value as Partial<StoredCheckpoint> | null;
  return (
    typeof c === 'object' &&
    c !== null &&
    typeof c.backboneName === 'string' &&
    (c.phase === 'head' || c.phase === 'fine') &&
    typeof c.epoch === 'number' &&
    Array.isArray(c.classes) &&
    c.model instanceof Blob
  );
}

/** The file name the checkpoint is loaded under (shown as the backbone's file). */
export function checkpointFileName(info: Pick<CheckpointInfo, 'phase' | 'epoch'>): string {
  return `webtune-checkpoint-${info.phase === 'head' ? 'phase1' : `phase2-epoch${info.epoch}`}.safetensors`;
}

export class Checkpoints {
  private readonly store: UseStore;
  /** Writes in order, so that an older checkpoint never lands after a newer one. */
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: AppContext,
    /** Restarts the engine on a backbone choice (the running one stays if it is refused). */
    private readonly loadBackbone: (choice: BackboneChoice) => void,
    databaseName = 'webtune-checkpoint',
  ) {
    this.store = createStore(databaseName, 'checkpoint');
  }

  /** Keeps the engine's checkpoint of the running training. */
  save({ bytes, phase, epoch }: Checkpoint): void {
    const backboneName = this.ctx.state.engine.backboneName;
    if (!backboneName) return;
    const stored: StoredCheckpoint = {
      backboneName,
      phase,
      epoch,
      classes: this.ctx.state.summary.classes.map((c) => c.label),
      savedAt: Date.now(),
      model: new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }),
    };
    this.writing = this.writing
      .then(() => set(KEY, stored, this.store))
      .then(
        () => this.show(stored),
        // A full storage costs the checkpoint only; the pictures' status line says what the browser keeps.
        () => {},
      );
  }

  /** Shows the checkpoint a reload (or a crash in an earlier tab) left. */
  async restore(): Promise<void> {
    let stored: unknown;
    try {
      stored = await get(KEY, this.store);
    } catch {
      return;
    }
    if (isStored(stored)) this.show(stored);
  }

  /** Restarts the engine with the checkpoint as its weights; Train then continues from it. */
  async continueTraining(): Promise<void> {
    let stored: unknown;
    try {
      stored = await get(KEY, this.store);
    } catch (error) {
      this.ctx.reportError(`The checkpoint could not be read from this browser: ${String(error)}`);
      return;
    }
    if (!isStored(stored)) {
      this.ctx.reportError('The checkpoint is no longer in this browser.');
      this.forget();
      return;
    }
    const file = new File([stored.model], checkpointFileName(stored), { type: 'application/octet-stream' });
    this.ctx.store.update((s) => {
      if (s.checkpoint) s.checkpoint = { ...s.checkpoint, continued: true };
    });
    this.loadBackbone({ name: stored.backboneName, file });
  }

  /** Forgets the checkpoint (a run ended, the user discarded it, or "Clear all"). */
  forget(): void {
    this.writing = this.writing.then(() => del(KEY, this.store)).catch(() => {});
    this.ctx.store.update((s) => {
      s.checkpoint = null;
    });
  }

  private show(stored: StoredCheckpoint): void {
    const { model: _model, ...info } = stored;
    this.ctx.store.update((s) => {
      s.checkpoint = { ...info, continued: false };
    });
  }
}

/** "phase 2, epoch 3 (EfficientNet-Lite0, classes a, b)" */
export function describeCheckpoint(info: CheckpointInfo): string {
  const where = info.phase === 'head' ? 'the end of phase 1 (the head)' : `phase 2, fine-tuning epoch ${info.epoch}`;
  return `${where}; ${backboneInfo(info.backboneName).label}, classes ${info.classes.join(', ')}`;
}
