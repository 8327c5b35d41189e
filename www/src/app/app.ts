// The app's actions: everything that changes state goes through here. It owns the trainer
// client, restarts it after a crash, a backend change (on the CPU when the GPU stopped
// responding) or a backbone change, gives a new worker the images the page still holds, and keeps
// those images and the chosen backbone in the browser's storage so that a reload brings them back.

import {
  DEFAULT_BACKBONE,
  type Backend,
  type BackendChoice,
  type ExportFormat,
  type FineTuneSettings,
  type Request,
  type Simulation,
  type TrainSettings,
  type WeightsSource,
  type WorkerEvent,
} from './protocol';
import { backboneInfo } from './backbones';
import { BackboneStore } from './backbone-store';
import { EngineGone, TrainerClient } from './trainer-client';
import type { Picked, PickedFile } from './drop-zone';
import { LibraryStore, storageProblem } from './library-store';
import { formatBytes } from './dom';
import { exportFileName } from './download';
import {
  DEFAULT_BACKBONE_CHOICE,
  EMPTY_SUMMARY,
  Store,
  idleFineTune,
  idleTraining,
  isTraining,
  type AppState,
  type BackboneChoice,
  type EpochRecord,
  type FileProblem,
  type HeldImage,
  type PredictionResult,
  type TrainedModel,
} from './state';

/** Restarts in a row that died before the images were back; after that the user has to act. */
const MAX_CRASH_RESTARTS = 2;

const GPU_LOST_DURING_TRAINING =
  'The GPU stopped responding during training; switched to the CPU. Press Train to continue.';
const GPU_LOST = 'The GPU stopped responding; switched to the CPU. Your pictures are kept.';

/** The engine failed to start; calls wait for the user to pick another backend. */
class EngineUnavailable extends Error {
  constructor() {
    super('the training engine is not running');
  }
}

type AddJob = { kind: 'class'; label: string } | { kind: 'image'; picked: PickedFile };

export class App {
  readonly store: Store;
  private client: TrainerClient | null = null;
  /** Settles when the current engine is initialised and has every held image. */
  private ready: Promise<void> = Promise.resolve();
  private generation = 0;
  private crashStreak = 0;
  private nextKey = 1;
  private nextMessageId = 1;
  private addQueue: AddJob[] = [];
  private addLoopRunning = false;
  private readonly library = new LibraryStore();
  private readonly backbones = new BackboneStore();
  /** The backbone choice the browser holds (what a reload starts on). */
  private savedBackbone: BackboneChoice = DEFAULT_BACKBONE_CHOICE;

  constructor(
    initial: AppState,
    /** The bundled default backbone's weights, served by the page. */
    private readonly weightsUrl: string,
    /** From the `?simulate=` URL parameter: a failure the worker acts out (see protocol.ts). */
    private readonly simulate: Simulation | null = null,
  ) {
    this.store = new Store(initial);
  }

  get state(): AppState {
    return this.store.get();
  }

  /**
   * Brings back the pictures and the backbone of the last visit, then starts the engine on that
   * backbone, which is given the pictures.
   */
  start(): void {
    void Promise.all([this.restoreLibrary(), this.restoreBackbone()]).then(() => this.restart());
  }

  // ---- engine lifecycle -------------------------------------------------------------------

  /**
   * Starts a worker for the chosen backend and backbone and re-adds every held image to it.
   * `beside`: the running engine keeps working until the new one is up, and stays if the new
   * backbone is refused (a backbone change); otherwise (a crash, a backend change) it is stopped
   * first.
   */
  private async startEngine(beside = false): Promise<void> {
    const generation = ++this.generation;
    // Only the current client's events count; a client started beside becomes current once up.
    const client = new TrainerClient({
      onEvent: (event) => {
        if (client === this.client) this.onWorkerEvent(event);
      },
      onCrash: (message, backend) => {
        if (client === this.client) this.onCrash(message, backend);
      },
    });
    const choice = this.state.engine.choice;
    const backbone = this.state.backbone.wanted;
    if (beside) {
      this.store.update((s) => {
        s.backbone = { ...s.backbone, loading: true };
      });
    } else {
      this.client?.shutdown();
      this.client = client;
      this.store.update((s) => {
        s.engine = { ...s.engine, status: 'starting', backend: null, note: null, noteDetail: null };
        s.backbone = { ...s.backbone, loading: false };
        s.summary = EMPTY_SUMMARY;
        s.trained = null;
      });
    }

    let info;
    try {
      info = await client.init(choice, backbone.name, this.weightsOf(backbone), this.simulate);
    } catch (error) {
      if (generation !== this.generation) {
        client.shutdown();
        return;
      }
      if (beside) {
        client.shutdown();
        this.backboneRefused(error);
        return;
      }
      if (error instanceof EngineGone && error.crashed) return; // onCrash handles it
      if (backbone.file) {
        this.backboneFailedAtStart(messageOf(error));
        return;
      }
      const hint = choice === 'webgpu' ? ' Choose "Auto" or "CPU" as the backend to train without WebGPU.' : '';
      this.store.update((s) => {
        s.engine = { ...s.engine, status: 'failed' };
      });
      this.reportError(`The training engine could not start: ${messageOf(error)}.${hint}`);
      throw error;
    }
    if (generation !== this.generation) {
      client.shutdown();
      return;
    }
    if (beside) {
      this.client?.shutdown();
      this.client = client;
    }
    this.store.update((s) => {
      s.engine = {
        ...s.engine,
        status: 'ready',
        backend: info.backend,
        backboneName: info.backboneName,
        inputSize: info.inputSize,
        maxUnfreeze: info.maxUnfreeze,
        unitsDescription: info.unitsDescription,
        note: info.note,
        noteDetail: info.noteDetail,
      };
      s.backbone = {
        ...s.backbone,
        running: backbone,
        loading: false,
        weightsBytes: info.weightsBytes,
        importMs: info.importMs,
      };
      s.summary = info.summary;
      if (beside) {
        // The old engine's model and its results went with it.
        s.trained = null;
        s.training = idleTraining();
        s.predictions = [];
      }
    });
    if (backbone !== this.savedBackbone) this.keepBackbone(backbone);

    // Give the new worker what the old one had.
    for (const label of this.state.classes) {
      try {
        await client.call({ type: 'addClass', label });
      } catch (error) {
        if (error instanceof EngineGone) return;
      }
    }
    const held = [...this.state.images.values()].sort((a, b) => a.key - b.key);
    for (const image of held) {
      try {
        const { summary } = await client.call({
          type: 'addImage',
          key: image.key,
          label: image.label,
          fileName: image.file.name,
          file: image.file,
        });
        if (generation !== this.generation) return;
        this.store.update((s) => {
          s.summary = summary;
        });
      } catch (error) {
        if (error instanceof EngineGone && !error.crashed) return;
        // The GPU gave up, not this picture: the engine restarting on the CPU is given it.
        if (gpuGaveUp(error)) return;
        // A crash here is this image's doing: drop it so the next engine does not trip on it.
        const reason =
          error instanceof EngineGone
            ? `the image decoder crashed on this file: ${error.message}`
            : reasonOf(image.file.name, error);
        this.dropHeld(image.key, { path: image.path, reason });
        if (error instanceof EngineGone) return;
      }
    }
    this.crashStreak = 0;
  }

  /** Tells the user (in the training panel too when training was cut short) and restarts. */
  private onCrash(message: string, backend: Backend | null): void {
    // A user's backbone that kills the engine while it loads would do so on every restart.
    if (this.state.engine.status === 'starting' && this.state.backbone.wanted.file) {
      this.backboneFailedAtStart(`the engine crashed: ${message}`);
      return;
    }
    const training = isTraining(this.state);
    if (backend === 'webgpu') {
      this.onGpuLost(message, training);
      return;
    }
    this.crashStreak += 1;
    const images = this.state.images.size;
    const givingUp = this.crashStreak > MAX_CRASH_RESTARTS;
    if (training) {
      const error =
        `The training engine crashed during training: ${message}.` +
        (givingUp ? '' : ' It was restarted and your images were kept; press Train to try again.');
      this.store.update((s) => {
        s.training = { ...s.training, phase: 'failed', error };
      });
    }
    if (givingUp) {
      this.store.update((s) => {
        s.engine = { ...s.engine, status: 'failed' };
      });
      this.reportError(
        `The training engine crashed again: ${message}. It was not restarted; reload the page or choose another backend.`,
      );
      this.ready = Promise.reject(new Error('the training engine crashed'));
      this.ready.catch(() => {});
      return;
    }
    this.reportError(
      `The training engine crashed: ${message}. It has been restarted` +
        (images > 0 ? ` and your ${images} image${images === 1 ? '' : 's'} are being added again.` : '.'),
    );
    this.restart();
  }

  /**
   * Any crash on WebGPU is taken as the GPU giving up (a lost device, a driver reset, a wgpu
   * panic): the CPU does not share that fate, so the engine comes back there with every picture.
   */
  private onGpuLost(message: string, training: boolean): void {
    this.store.update((s) => {
      s.engine = { ...s.engine, choice: 'cpu', lostGpu: message };
      if (training) s.training = { ...s.training, phase: 'failed', error: GPU_LOST_DURING_TRAINING };
    });
    if (!training) this.reportError(GPU_LOST);
    this.crashStreak = 0;
    this.restart();
  }

  private restart(beside = false): void {
    this.ready = this.startEngine(beside);
    // Files picked while no engine could start have waited in the queue.
    this.ready.then(() => this.runAddLoop(), () => {});
  }

  /** Waits for the engine and sends one request to it. */
  private async call<T extends Request['type']>(request: Extract<Request, { type: T }>) {
    // A start that hands over to another (a refused saved backbone) replaces `ready` meanwhile.
    for (let ready = this.ready; ; ready = this.ready) {
      try {
        await ready;
      } catch {
        throw new EngineUnavailable();
      }
      if (ready === this.ready) break;
    }
    if (!this.client) throw new EngineUnavailable();
    return this.client.call<T>(request);
  }

  setBackend(choice: BackendChoice): void {
    if (this.state.backbone.loading) return;
    if (choice === this.state.engine.choice && this.state.engine.status !== 'failed') return;
    this.store.update((s) => {
      s.engine = { ...s.engine, choice, lostGpu: null };
      s.training = idleTraining();
    });
    this.crashStreak = 0;
    this.restart();
  }

  // ---- backbone ---------------------------------------------------------------------------

  /**
   * Restarts the engine on another backbone with every picture. The running engine stays until
   * the new one is up: weights the engine refuses leave it, its model and the pictures as they
   * were, and the page says why.
   */
  loadBackbone(choice: BackboneChoice): void {
    if (isTraining(this.state) || this.state.backbone.loading) return;
    if (!choice.file && !backboneInfo(choice.name).bundled) {
      this.store.update((s) => {
        s.backbone = { ...s.backbone, error: `${backboneInfo(choice.name).label} needs a weights file.` };
      });
      return;
    }
    this.store.update((s) => {
      s.backbone = { ...s.backbone, wanted: choice, error: null, restored: false };
    });
    this.restart(this.state.engine.status === 'ready');
  }

  private weightsOf({ file }: BackboneChoice): WeightsSource {
    return file ? { kind: 'file', fileName: file.name, file } : { kind: 'bundled', url: this.weightsUrl };
  }

  /** A backbone loaded beside the running engine was refused: keep the running one. */
  private backboneRefused(error: unknown): void {
    const { wanted } = this.state.backbone;
    const reason = error instanceof EngineGone ? `the engine crashed: ${error.message}` : messageOf(error);
    const source = wanted.file ? wanted.file.name : 'the bundled weights';
    this.store.update((s) => {
      s.backbone = {
        ...s.backbone,
        wanted: s.backbone.running ?? DEFAULT_BACKBONE_CHOICE,
        loading: false,
        error:
          `${source} could not be loaded as ${backboneInfo(wanted.name).label}: ${reason}. ` +
          'The backbone in use and your pictures are unchanged.',
      };
    });
  }

  /** The backbone an engine start was given (one saved from the last visit) failed: use the default. */
  private backboneFailedAtStart(reason: string): void {
    const { wanted } = this.state.backbone;
    this.store.update((s) => {
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
    this.restart();
  }

  /** Brings back the backbone chosen on the last visit; without storage, the default it is. */
  private async restoreBackbone(): Promise<void> {
    let stored: BackboneChoice | null;
    try {
      stored = await this.backbones.load();
    } catch {
      return; // The pictures' status line says why the browser keeps nothing.
    }
    if (!stored) return;
    const restored = stored;
    this.savedBackbone = restored;
    this.store.update((s) => {
      s.backbone = { ...s.backbone, wanted: restored, restored: true };
    });
  }

  /** Keeps the running backbone for the next visit; a file the browser will not keep is said. */
  private keepBackbone(choice: BackboneChoice): void {
    this.savedBackbone = choice;
    this.backbones.save(choice).then(
      () => {
        if (this.state.backbone.running !== choice) return;
        this.store.update((s) => {
          s.backbone = { ...s.backbone, storageProblem: null };
        });
      },
      (error: unknown) => {
        // Whatever was stored before would come back on reload instead: forget it too.
        this.backbones.forget().catch(() => {});
        if (!choice.file || this.state.backbone.running !== choice) return;
        const problem =
          `${choice.file.name} (${formatBytes(choice.file.size)}) could not be kept in this browser: ${storageProblem(error)}. ` +
          `It is used until you leave the page; after a reload the page starts on the default ${backboneInfo(DEFAULT_BACKBONE).label}.`;
        this.store.update((s) => {
          s.backbone = { ...s.backbone, storageProblem: problem };
        });
      },
    );
  }

  // ---- dataset ----------------------------------------------------------------------------

  /** Queues picked classes and files; each file is added or reported as a problem. */
  addPicked({ classes, files, problems }: Picked): void {
    const known = new Set(this.state.classes);
    const jobs: AddJob[] = [
      ...classes.filter((label) => !known.has(label)).map((label): AddJob => ({ kind: 'class', label })),
      ...files.map((picked): AddJob => ({ kind: 'image', picked })),
    ];
    this.store.update((s) => {
      s.problems = [...s.problems, ...problems];
      s.adding += files.length;
    });
    this.addQueue.push(...jobs);
    void this.runAddLoop();
  }

  /** Works through the add queue, one job at a time; a second call while it runs does nothing. */
  private async runAddLoop(): Promise<void> {
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
                : reasonOf(job.picked.file.name, error);
          this.store.update((s) => {
            s.problems = [...s.problems, { path, reason }];
          });
        }
        this.addQueue.shift();
        if (job.kind === 'image') {
          this.store.update((s) => {
            s.adding -= 1;
          });
        }
      }
    } finally {
      this.addLoopRunning = false;
    }
  }

  private async addClass(label: string): Promise<void> {
    if (this.state.classes.includes(label)) return;
    const { summary } = await this.call({ type: 'addClass', label });
    this.store.update((s) => {
      s.classes = [...s.classes, label];
      s.summary = summary;
      s.trained = null;
    });
    this.keepClasses();
  }

  private async addImage(picked: PickedFile): Promise<void> {
    const key = this.nextKey++;
    const { summary } = await this.call({
      type: 'addImage',
      key,
      label: picked.label,
      fileName: picked.file.name,
      file: picked.file,
    });
    const image: HeldImage = { key, label: picked.label, path: picked.path, file: picked.file };
    const newClass = !this.state.classes.includes(image.label);
    this.store.update((s) => {
      s.images = new Map(s.images).set(image.key, image);
      if (newClass) s.classes = [...s.classes, image.label];
      s.summary = summary;
      s.trained = null;
    });
    // Only pictures the engine could decode are kept: the others are listed as problems.
    this.keepPicture(image);
    if (newClass) this.keepClasses();
  }

  async removeClass(label: string): Promise<void> {
    if (isTraining(this.state)) return;
    try {
      const { summary } = await this.call({ type: 'removeClass', label });
      const removed = [...this.state.images.values()].filter((image) => image.label === label).map((image) => image.key);
      this.store.update((s) => {
        s.classes = s.classes.filter((c) => c !== label);
        s.images = new Map([...s.images].filter(([, image]) => image.label !== label));
        s.summary = summary;
        s.trained = null;
      });
      this.keepClasses();
      this.persist(() => this.library.deletePictures(removed));
    } catch (error) {
      if (!(error instanceof EngineGone)) this.reportError(`Could not remove class "${label}": ${messageOf(error)}`);
    }
  }

  clearProblems(): void {
    this.store.update((s) => {
      s.problems = [];
    });
  }

  /** Removes every class and picture, here, in the engine and in the browser's storage. */
  async clearAll(): Promise<void> {
    if (isTraining(this.state) || this.state.adding > 0) return;
    const labels = this.state.classes;
    this.persist(() => this.library.clear());
    this.store.update((s) => {
      s.classes = [];
      s.images = new Map();
      s.problems = [];
      s.training = idleTraining();
      s.trained = null;
      s.predictions = [];
      s.library = { ...s.library, restored: 0 };
    });
    // Waits for the engine to have had everything it is being given back, then empties it.
    for (const label of labels) {
      try {
        const { summary } = await this.call({ type: 'removeClass', label });
        this.store.update((s) => {
          s.summary = summary;
        });
      } catch (error) {
        // A new engine starts from the (now empty) pictures the page holds.
        if (error instanceof EngineUnavailable || error instanceof EngineGone) return;
        this.reportError(`Could not remove class "${label}" from the training engine: ${messageOf(error)}`);
      }
    }
  }

  private dropHeld(key: number, problem: FileProblem): void {
    this.store.update((s) => {
      const images = new Map(s.images);
      images.delete(key);
      s.images = images;
      s.problems = [...s.problems, problem];
    });
    this.persist(() => this.library.deletePictures([key]));
  }

  // ---- keeping the pictures across reloads ------------------------------------------------

  /** Puts the stored pictures and classes back in the state; the engine is given them on start. */
  private async restoreLibrary(): Promise<void> {
    let stored;
    try {
      stored = await this.library.load();
    } catch (error) {
      this.storageFailed(error);
      return;
    }
    const images = new Map(stored.images.map((image) => [image.key, image]));
    this.nextKey = stored.images.reduce((next, image) => Math.max(next, image.key + 1), this.nextKey);
    this.store.update((s) => {
      s.classes = stored.classes;
      s.images = images;
      s.library = { status: 'saving', restored: images.size, problem: null, partial: false };
    });
  }

  private keepPicture(image: HeldImage): void {
    // After a failed write (storage full), new pictures stay in memory; removals still go through.
    if (this.state.library.status === 'memory') return;
    this.persist(() => this.library.savePicture(image));
  }

  private keepClasses(): void {
    const classes = this.state.classes;
    this.persist(() => this.library.saveClasses(classes));
  }

  private persist(write: () => Promise<void>): void {
    write().catch((error: unknown) => this.storageFailed(error));
  }

  /** The first failure says so on the page; from then on the pictures are kept in memory only. */
  private storageFailed(error: unknown): void {
    if (this.state.library.status === 'memory') return;
    const problem = storageProblem(error);
    this.store.update((s) => {
      s.library = { ...s.library, status: 'memory', problem, partial: s.library.status === 'saving' };
    });
  }

  // ---- training ---------------------------------------------------------------------------

  /**
   * The whole recipe: phase 1 trains the head on cached features; when `fine.unfreeze` > 0,
   * phase 2 fine-tunes that many backbone units with it; then the final model is evaluated on
   * the validation split. A failure in phase 2 keeps the model phase 1 made.
   */
  async train(settings: TrainSettings, fine: FineTuneSettings): Promise<void> {
    if (isTraining(this.state) || !this.state.summary.trainable) return;
    const model: TrainedModel = {
      backboneName: this.state.engine.backboneName ?? 'model',
      classCount: this.state.summary.classes.length,
      fineTuned: 0,
    };
    this.store.update((s) => {
      s.training = { ...idleTraining(), phase: 'features' };
      s.trained = null;
      s.predictions = [];
    });

    let head;
    try {
      head = await this.call({ type: 'train', settings });
    } catch (error) {
      this.trainingFailed(error, 'Training failed');
      return;
    }
    this.store.update((s) => {
      s.training = {
        ...s.training,
        featureMs: head.featureMs,
        trainMs: head.trainMs,
        split: { train: head.train, val: head.val },
      };
    });
    if (head.stopped || !head.last) {
      this.finish(head.last ? model : null, 'stopped');
      return;
    }

    if (fine.unfreeze > 0) {
      this.store.update((s) => {
        s.training = { ...s.training, phase: 'caching', fine: idleFineTune(fine.unfreeze) };
      });
      let result;
      try {
        result = await this.call({ type: 'fineTune', settings: fine, seed: settings.seed });
      } catch (error) {
        // Phase 1's model (or, after a diverged epoch, the last good weights) is still there.
        const tuned = this.state.training.epochs.some((e) => e.stage === 'fine');
        const kept = tuned
          ? 'You can still download the model and try it.'
          : 'The phase-1 model (head only) is kept: you can still download it and try it.';
        if (this.trainingFailed(error, 'Fine-tuning (phase 2) failed', kept)) {
          this.store.update((s) => {
            s.trained = { ...model, fineTuned: tuned ? fine.unfreeze : 0 };
          });
        }
        return;
      }
      const fineEpochs = this.state.training.epochs.filter((e) => e.stage === 'fine');
      this.store.update((s) => {
        s.training = {
          ...s.training,
          fine: {
            ...(s.training.fine ?? idleFineTune(fine.unfreeze)),
            cacheBytes: result.cacheBytes,
            cacheMs: result.cacheMs,
            fineMs: result.fineMs,
            stoppedEarly: result.stoppedEarly,
            bestEpoch: result.stoppedEarly ? bestEpoch(fineEpochs) : null,
          },
        };
      });
      if (result.last) model.fineTuned = fine.unfreeze;
      if (result.stopped) {
        this.finish(model, 'stopped');
        return;
      }
    }

    if (head.val > 0) {
      this.store.update((s) => {
        s.training = { ...s.training, phase: 'evaluating' };
      });
      try {
        const evaluation = await this.call({ type: 'evaluate' });
        this.store.update((s) => {
          s.training = { ...s.training, evaluation };
        });
      } catch (error) {
        if (error instanceof EngineGone) {
          this.trainingFailed(error, 'Evaluation failed');
          return;
        }
        this.reportError(`Could not evaluate the model on the validation pictures: ${messageOf(error)}`);
      }
    }
    this.finish(model, 'done');
  }

  private finish(model: TrainedModel | null, phase: 'done' | 'stopped'): void {
    this.store.update((s) => {
      s.training = { ...s.training, phase };
      s.trained = model;
    });
  }

  /**
   * Shows why a step of the recipe failed; false when the engine crashed (onCrash, which runs
   * first and knows whether the GPU gave up, has said so and restarts it without the model).
   */
  private trainingFailed(error: unknown, what: string, after = ''): boolean {
    if (error instanceof EngineGone && error.crashed && !isTraining(this.state)) return false;
    this.store.update((s) => {
      const message = messageOf(error);
      const text = after ? `${message}${/[.!?]$/.test(message) ? '' : '.'} ${after}` : message;
      s.training = { ...s.training, phase: 'failed', error: `${what}: ${text}` };
    });
    return !(error instanceof EngineGone);
  }

  stopTraining(): void {
    if (!isTraining(this.state) || !this.client) return;
    this.client.call({ type: 'stopTraining' }).catch(() => {});
  }

  private onWorkerEvent(event: WorkerEvent): void {
    this.store.update((s) => {
      const t = s.training;
      switch (event.type) {
        case 'features':
          s.training = {
            ...t,
            phase: 'features',
            featuresDone: event.done,
            featuresTotal: event.total,
            featureMs: event.elapsedMs,
          };
          return;
        case 'split':
          s.training = { ...t, phase: 'training', split: { train: event.train, val: event.val }, notes: withNote(t.notes, event.note) };
          return;
        case 'epoch': {
          const epochs = [...t.epochs, { ...event.report, stage: event.stage, epochMs: event.epochMs }];
          if (event.stage === 'head') {
            s.training = { ...t, phase: 'training', epochs, trainMs: event.elapsedMs };
          } else if (t.fine) {
            s.training = { ...t, phase: 'fine-tuning', epochs, fine: { ...t.fine, fineMs: event.elapsedMs } };
          }
          return;
        }
        case 'cache':
          if (!t.fine) return;
          s.training = {
            ...t,
            phase: 'caching',
            notes: withNote(t.notes, event.note),
            fine: { ...t.fine, cacheDone: event.done, cacheTotal: event.total, cacheBytes: event.bytes, cacheMs: event.elapsedMs },
          };
          return;
      }
    });
  }

  // ---- export and predictions -------------------------------------------------------------

  /** The trained classifier as `format` bytes, with the file name to save it under. */
  async exportModel(format: ExportFormat): Promise<{ bytes: Uint8Array<ArrayBuffer>; fileName: string } | null> {
    const trained = this.state.trained;
    if (!trained || this.state.exporting) return null;
    this.store.update((s) => {
      s.exporting = format;
    });
    try {
      const { bytes } = await this.call({ type: 'export', format });
      return { bytes: bytes as Uint8Array<ArrayBuffer>, fileName: exportFileName(trained, format) };
    } catch (error) {
      this.reportError(`Could not export the model as ${format === 'onnx' ? 'ONNX' : format}: ${messageOf(error)}`);
      return null;
    } finally {
      this.store.update((s) => {
        s.exporting = null;
      });
    }
  }

  async predict(files: File[]): Promise<void> {
    if (!this.state.trained) return;
    for (const file of files) {
      const id = this.nextMessageId++;
      this.store.update((s) => {
        s.predictions = [{ id, fileName: file.name, predictions: null, error: null }, ...s.predictions];
      });
      let result: Pick<PredictionResult, 'predictions' | 'error'>;
      try {
        const { predictions } = await this.call({ type: 'predict', fileName: file.name, file });
        result = { predictions, error: null };
      } catch (error) {
        result = { predictions: null, error: reasonOf(file.name, error) };
      }
      this.store.update((s) => {
        s.predictions = s.predictions.map((p) => (p.id === id ? { ...p, ...result } : p));
      });
    }
  }

  // ---- messages ---------------------------------------------------------------------------

  reportError(text: string): void {
    const id = this.nextMessageId++;
    this.store.update((s) => {
      s.errors = [...s.errors, { id, text }];
    });
  }

  dismissError(id: number): void {
    this.store.update((s) => {
      s.errors = s.errors.filter((e) => e.id !== id);
    });
  }
}

function withNote(notes: string[], note: string | null): string[] {
  return note === null || notes.includes(note) ? notes : [...notes, note];
}

/** Phase 2's epoch with the lowest validation loss (the first of equals), as early stopping keeps. */
function bestEpoch(epochs: EpochRecord[]): number | null {
  let best: EpochRecord | null = null;
  for (const e of epochs) {
    if (e.valLoss !== null && (best === null || e.valLoss < (best.valLoss ?? Infinity))) best = e;
  }
  return best?.epoch ?? null;
}

/** Whether `error` ended a call because the engine crashed on WebGPU (see onGpuLost). */
function gpuGaveUp(error: unknown): boolean {
  return error instanceof EngineGone && error.crashed && error.backend === 'webgpu';
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The wasm errors start with the file name; the page shows the path, so keep just the reason. */
function reasonOf(fileName: string, error: unknown): string {
  const message = messageOf(error);
  const prefix = `${fileName}: `;
  return message.startsWith(prefix) ? message.slice(prefix.length) : message;
}
