// The backbone choice: loading another architecture or weights file beside the running engine,
// falling back to the bundled default when a saved file no longer loads, and keeping the choice
// in the browser so a reload starts on it.

import { DEFAULT_BACKBONE, type WeightsSource } from '../engine/protocol';
import { EngineGone } from '../engine/trainer-client';
import { formatBytes } from '../views/dom';
import { BackboneStore } from './backbone-store';
import { backboneInfo } from './backbones';
import { messageOf, type AppContext } from './context';
import { storageProblem } from './library-store';
import { DEFAULT_BACKBONE_CHOICE, isTraining, type BackboneChoice } from './state';

export class BackboneChoices {
  private readonly backbones = new BackboneStore();
  /** The backbone choice the browser holds (what a reload starts on). */
  savedBackbone: BackboneChoice = DEFAULT_BACKBONE_CHOICE;

  constructor(
    private readonly ctx: AppContext,
    /** Restarts the engine; `beside`: the running one stays until the new one is up. */
    private readonly restart: (beside: boolean) => void,
    /** The bundled default backbone's weights, served by the page. */
    private readonly weightsUrl: string,
  ) {}


  /**
   * Restarts the engine on another backbone with every picture. The running engine stays until
   * the new one is up: weights the engine refuses leave it, its model and the pictures as they
   * were, and the page says why.
   */
  load(choice: BackboneChoice): void {
    if (isTraining(this.ctx.state) || this.ctx.state.backbone.loading) return;
    if (!choice.file && !backboneInfo(choice.name).bundled) {
      this.ctx.store.update((s) => {
        s.backbone = { ...s.backbone, error: `${backboneInfo(choice.name).label} needs a weights file.` };
      });
      return;
    }
    this.ctx.store.update((s) => {
      s.backbone = { ...s.backbone, wanted: choice, error: null, refusedMemoryBytes: null, restored: false };
    });
    this.restart(this.ctx.state.engine.status === 'ready');
  }

  weightsOf({ file }: BackboneChoice): WeightsSource {
    return file ? { kind: 'file', fileName: file.name, file } : { kind: 'bundled', url: this.weightsUrl };
  }

  /** A backbone loaded beside the running engine was refused: keep the running one. */
  refused(error: unknown, memoryBytes: number | null): void {
    const { wanted } = this.ctx.state.backbone;
    const reason = error instanceof EngineGone ? `the engine crashed: ${error.message}` : messageOf(error);
    const source = wanted.file ? wanted.file.name : 'the bundled weights';
    this.ctx.store.update((s) => {
      s.backbone = {
        ...s.backbone,
        wanted: s.backbone.running ?? DEFAULT_BACKBONE_CHOICE,
        loading: false,
        refusedMemoryBytes: memoryBytes,
        error:
          `${source} could not be loaded as ${backboneInfo(wanted.name).label}: ${reason}. ` +
          'The backbone in use and your pictures are unchanged.',
      };
    });
  }

  /** The backbone an engine start was given (one saved from the last visit) failed: use the default. */
  failedAtStart(reason: string): void {
    const { wanted } = this.ctx.state.backbone;
    this.ctx.store.update((s) => {
      s.backbone = {
        ...s.backbone,
        wanted: DEFAULT_BACKBONE_CHOICE,
        restored: false,
        loading: false,
        error:
          `${wanted.file?.name ?? 'The weights'} could not be loaded as ${backboneInfo(wanted.name).label}: ${reason}. ` +
          `Using the default ${backboneInfo(DEFAULT_BACKBONE).label} instead.`,
      };
    });
    this.restart(false);
  }

  /** Brings back the backbone chosen on the last visit; without storage, the default it is. */
  async restore(): Promise<void> {
    let stored: BackboneChoice | null;
    try {
      stored = await this.backbones.load();
    } catch {
      return; // The pictures' status line says why the browser keeps nothing.
    }
    if (!stored) return;
    const restored = stored;
    this.savedBackbone = restored;
    this.ctx.store.update((s) => {
      s.backbone = { ...s.backbone, wanted: restored, restored: true };
    });
  }

  /** Keeps the running backbone for the next visit; a file the browser will not keep is said. */
  keep(choice: BackboneChoice): void {
    this.savedBackbone = choice;
    this.backbones.save(choice).then(
      () => {
        if (this.ctx.state.backbone.running !== choice) return;
        this.ctx.store.update((s) => {
          s.backbone = { ...s.backbone, storageProblem: null };
        });
      },
      (error: unknown) => {
        // Whatever was stored before would come back on reload instead: forget it too.
        this.backbones.forget().catch(() => {});
        if (!choice.file || this.ctx.state.backbone.running !== choice) return;
        const problem =
          `${choice.file.name} (${formatBytes(choice.file.size)}) could not be kept in this browser: ${storageProblem(error)}. ` +
          `It is used until you leave the page; after a reload the page starts on the default ${backboneInfo(DEFAULT_BACKBONE).label}.`;
        this.ctx.store.update((s) => {
          s.backbone = { ...s.backbone, storageProblem: problem };
        });
      },
    );
  }
}
