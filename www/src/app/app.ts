// The app's actions: everything that changes state goes through here. It owns the trainer
// client, restarts it after a crash, a backend change (on the CPU when the GPU stopped
// responding) or a backbone change, gives a new worker the images the page still holds, and keeps
// those images and the chosen backbone in the browser's storage so that a reload brings them back.

import {
  type Augmentation,
  type Backend,
  type BackendChoice,
  type ExportFormat,
  type Recipe,
  type Request,
  type Simulation,
} from '../engine/protocol';
import { EngineError, EngineGone, TrainerClient } from '../engine/trainer-client';
import type { Picked } from '../views/drop-zone';
import { exportFileName } from '../views/download';
import { EngineUnavailable, gpuGaveUp, messageOf, reasonOf, type AppContext } from './context';
import { Pictures } from './pictures';
import {
  EMPTY_SUMMARY,
  Store,
  idleTraining,
  isTraining,
  type AppState,
  type BackboneChoice,
  type HeldImage,
  type PredictionResult,
} from './state';
import { TrainingRun } from './training';
import { BackboneChoices } from './backbone-choice';
import { Checkpoints } from './checkpoint';

/** Restarts in a row that died before the images were back; after that the user has to act. */
const MAX_CRASH_RESTARTS = 2;

const GPU_LOST_DURING_TRAINING =
  'The GPU stopped responding during training; switched to the CPU. Press Train to continue.';
const GPU_LOST = 'The GPU stopped responding; switched to the CPU. Your pictures are kept.';

export class App implements AppContext {
  readonly store: Store;
  readonly pictures: Pictures;
  readonly training: TrainingRun;
  readonly backbone: BackboneChoices;
  readonly checkpoints: Checkpoints;
  private client: TrainerClient | null = null;
  /** Settles when the current engine is initialised and has every held image. */
  private ready: Promise<void> = Promise.resolve();
  private generation = 0;
  private crashStreak = 0;
  /**
   * The stored picture the engine last died on while it was being added again: a crash may be
   * the picture's doing or not (memory runs out on any picture), so a stored picture is only
   * forgotten when the engine dies on it twice running.
   */
  private diedOn: number | null = null;
  /** Set once the page is going away (a reload, a closed tab): no failure from then on is a picture's. */
  private leaving = false;
  private nextMessageId = 1;

  constructor(
    initial: AppState,
    /** The bundled default backbone's weights, served by the page. */
    weightsUrl: string,
    /** From the `?simulate=` URL parameter: a failure the worker acts out (see protocol.ts). */
    private simulate: Simulation | null = null,
    /** From the `?workers=` URL parameter: at most this many workers train on the CPU (1 or 2). */
    private readonly workers = 2,
  ) {
    this.store = new Store(initial);
    this.pictures = new Pictures(this);
    this.training = new TrainingRun(this);
    this.backbone = new BackboneChoices(this, (beside) => this.restart(beside), weightsUrl);
    this.checkpoints = new Checkpoints(this, (choice) => this.backbone.load(choice));
  }

  get state(): AppState {
    return this.store.get();
  }

  /**
   * Brings back the pictures and the backbone of the last visit, then starts the engine on that
   * backbone, which is given the pictures.
   */
  start(): void {
    // Pictures waiting for their batch are stored before the page goes, and while the browser
    // has not finished storing them it asks whether to leave (a reload or a closed tab would lose
    // them). A page brought back from the back/forward cache is not leaving after all.
    addEventListener('beforeunload', (event) => {
      this.pictures.flush();
      if (this.state.library.storing > 0) event.preventDefault();
    });
    addEventListener('pagehide', () => {
      this.leaving = true;
      this.pictures.flush();
    });
    addEventListener('pageshow', () => {
      this.leaving = false;
    });
    void Promise.all([this.pictures.restoreLibrary(), this.backbone.restore(), this.checkpoints.restore()]).then(() => this.restart());
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
        if (client === this.client) this.training.onWorkerEvent(event);
      },
      onCrash: (message, backend) => {
        if (client === this.client) this.onCrash(message, backend);
      },
      onCheckpoint: (checkpoint) => {
        if (client === this.client) this.checkpoints.save(checkpoint);
      },
      onMemory: (bytes) => {
        if (client !== this.client) return;
        this.store.update((s) => {
          s.engine = { ...s.engine, memoryBytes: bytes };
        });
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
        s.engine = { ...s.engine, status: 'starting', backend: null, note: null, noteDetail: null, workers: null, memoryBytes: null };
        s.backbone = { ...s.backbone, loading: false };
        s.summary = EMPTY_SUMMARY;
        s.trained = null;
      });
    }

    let info;
    try {
      info = await client.init(choice, backbone.name, this.backbone.weightsOf(backbone), this.simulate, this.workers);
    } catch (error) {
      if (generation !== this.generation) {
        client.shutdown();
        return;
      }
      if (beside) {
        client.shutdown();
        this.backbone.refused(error, client.memoryBytes);
        return;
      }
      if (error instanceof EngineGone && error.crashed) return; // onCrash handles it
      if (backbone.file) {
        this.backbone.failedAtStart(messageOf(error));
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
        workers: info.workers,
        memoryBytes: client.memoryBytes,
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
    if (backbone !== this.backbone.savedBackbone) this.backbone.keep(backbone);

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
        const { summary, compact } = await client.call({
          type: 'addImage',
          key: image.key,
          label: image.label,
          fileName: image.file.name,
          file: image.compact ?? image.file,
          compact: image.compact !== null,
        });
        if (generation !== this.generation) return;
        if (compact) this.pictures.gotCompact(image.key, compact);
        this.store.update((s) => {
          s.summary = summary;
        });
      } catch (error) {
        if (this.onReAddFailure(image, error)) return;
      }
    }
    this.diedOn = null;
    this.crashStreak = 0;
  }

  /**
   * What a failure to give a stored picture to a new engine does to it; true when the re-adding
   * stops there (the engine is gone, or the page is). Only the engine's refusal of the file's
   * content, or a crash on the same picture twice running, forgets it for good: any other failure
   * (the page going away, a crash that may be memory's, a file the browser could not read back)
   * leaves it stored.
   */
  private onReAddFailure(image: HeldImage, error: unknown): boolean {
    if (this.leaving) return true;
    if (error instanceof EngineGone && !error.crashed) return true;
    // The GPU gave up, not this picture: the engine restarting on the CPU is given it.
    if (gpuGaveUp(error)) return true;
    if (error instanceof EngineGone) {
      if (this.diedOn !== image.key) {
        this.diedOn = image.key;
        return true;
      }
      this.diedOn = null;
      this.pictures.dropHeld(image.key, { path: image.path, reason: `the engine crashed twice while reading this file: ${error.message}` });
      return true;
    }
    if (error instanceof EngineError && error.info.kind === 'badFile') {
      this.pictures.dropHeld(image.key, { path: image.path, reason: reasonOf(error) });
    } else {
      this.pictures.setAside(image.key, {
        path: image.path,
        reason: `could not be given to the engine (${reasonOf(error)}); it stays stored and is tried again after a reload`,
      });
    }
    return false;
  }

  /** Tells the user (in the training panel too when training was cut short) and restarts. */
  private onCrash(message: string, backend: Backend | null): void {
    // A user's backbone that kills the engine while it loads would do so on every restart.
    if (this.state.engine.status === 'starting' && this.state.backbone.wanted.file) {
      this.backbone.failedAtStart(`the engine crashed: ${message}`);
      return;
    }
    const training = isTraining(this.state);
    // The simulated crash acts once a visit, so that the run can be continued.
    if (this.simulate?.kind === 'crash-in-training') this.simulate = null;
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
    this.ready.then(() => this.pictures.runAddLoop(), () => {});
  }

  /** Waits for the engine and sends one request to it. */
  async call<T extends Request['type']>(request: Extract<Request, { type: T }>) {
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

  loadBackbone(choice: BackboneChoice): void {
    this.backbone.load(choice);
  }

  stop(): void {
    this.client?.call({ type: 'stopTraining' }).catch(() => {});
  }

  // ---- training, forwarded for the views --------------------------------------------------

  async train(recipe: Recipe): Promise<void> {
    await this.training.train(recipe);
    // A run that ended needs no checkpoint; one cut short keeps it to continue from.
    if (['done', 'stopped'].includes(this.state.training.phase)) this.checkpoints.forget();
  }

  stopTraining(): void {
    this.training.stop();
  }

  setTrainingPaused(paused: boolean): Promise<void> {
    return this.training.setPaused(paused);
  }

  /** The trained model's classes for one picture (a webcam frame), most likely first. */
  async predictFrame(file: File) {
    const { predictions } = await this.call({ type: 'predict', fileName: file.name, file });
    return predictions;
  }

  /** Training views of `file` as phase 2 draws them with `augmentation`. */
  augmentedViews(file: File, augmentation: Augmentation, count: number, seed: number) {
    return this.call({ type: 'augmentedViews', fileName: file.name, file, augmentation, count, seed });
  }

  // ---- pictures, forwarded for the views --------------------------------------------------

  addPicked(picked: Picked): void {
    this.pictures.addPicked(picked);
  }

  removeClass(label: string): Promise<void> {
    return this.pictures.removeClass(label);
  }

  // Class cards: each resolves to why the edit was refused, or null.
  addClassNamed(name: string): Promise<string | null> {
    return this.pictures.addClassNamed(name);
  }

  renameClass(from: string, to: string): Promise<string | null> {
    return this.pictures.renameClass(from, to);
  }

  mergeClasses(from: string, into: string): Promise<string | null> {
    return this.pictures.mergeClasses(from, into);
  }

  movePicture(key: number, label: string): Promise<string | null> {
    return this.pictures.movePicture(key, label);
  }

  removePicture(key: number): Promise<string | null> {
    return this.pictures.removePicture(key);
  }

  clearProblems(): void {
    this.pictures.clearProblems();
  }

  clearAll(): Promise<void> {
    if (!isTraining(this.state) && this.state.adding === 0) this.checkpoints.forget();
    return this.pictures.clearAll();
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
        s.predictions = [{ id, fileName: file.name, file, predictions: null, error: null }, ...s.predictions];
      });
      let result: Pick<PredictionResult, 'predictions' | 'error'>;
      try {
        const { predictions } = await this.call({ type: 'predict', fileName: file.name, file });
        result = { predictions, error: null };
      } catch (error) {
        result = { predictions: null, error: reasonOf(error) };
      }
      this.store.update((s) => {
        s.predictions = s.predictions.map((p) => (p.id === id ? { ...p, ...result } : p));
      });
    }
  }

  // ---- explaining -------------------------------------------------------------------------

  /** Grad-CAM of the predicted class for `file`, with the overlay to show. */
  async gradCam(file: Blob, fileName: string) {
    const { cam } = await this.call({ type: 'gradCam', fileName, file, classIndex: null });
    return cam;
  }

  /** The pictures most likely mislabelled and the duplicates. */
  checkLabels(limit: number) {
    return this.call({ type: 'checkLabels', limit });
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
