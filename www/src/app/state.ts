// The one place the page's state lives. Views read it and re-render on change; only the app
// (app.ts) writes it.

import {
  DEFAULT_BACKBONE,
  type Backend,
  type BackendChoice,
  type BackboneName,
  type DatasetSummary,
  type EpochReport,
  type Evaluation,
  type ExportFormat,
  type Prediction,
  type Phase,
} from '../engine/protocol';
import type { CheckpointInfo } from './checkpoint';
import type { RunPlan } from './eta';

/** A picture the page holds, so it can be given to a restarted worker. */
export interface HeldImage {
  key: number;
  label: string;
  /** Where it came from, as shown to the user (e.g. "cats/tom.jpg"). */
  path: string;
  /** The file as the user gave it; after a reload, the compact copy (the original is not kept). */
  file: File;
  /**
   * The engine's compact copy of the picture (see the worker protocol's `addImage` reply): what
   * the browser's storage keeps and the next engine is given; null until an engine has had it.
   */
  compact: Blob | null;
}

/** A file that was not added, and why. */
export interface FileProblem {
  path: string;
  reason: string;
}

export type EngineStatus = 'starting' | 'ready' | 'failed';

export interface EngineState {
  status: EngineStatus;
  choice: BackendChoice;
  backend: Backend | null;
  backboneName: BackboneName | null;
  inputSize: number | null;
  /** Backbone units phase 2 can unfreeze, and what one is; from the running engine. */
  maxUnfreeze: number | null;
  unitsDescription: string | null;
  note: string | null;
  noteDetail: string | null;
  /** Workers that train (2: the CPU engine has a helper on a second core); null until ready. */
  workers: number | null;
  /** Set when the GPU stopped responding and the page moved to the CPU: what the engine said. */
  lostGpu: string | null;
  /**
   * The running engine's WebAssembly memory, its peak so far (see the worker protocol's `Reply`),
   * updated in steps of `MEMORY_STEP`; null until it has answered.
   */
  memoryBytes: number | null;
}

/** A backbone architecture with its weights: the user's file, or null for the bundled default. */
export interface BackboneChoice {
  name: BackboneName;
  file: File | null;
}

export const DEFAULT_BACKBONE_CHOICE: BackboneChoice = { name: DEFAULT_BACKBONE, file: null };

/**
 * The backbone: the one the running engine has, and the one being loaded. A new backbone is
 * started beside the running engine, which is only replaced once the new one is up; a file the
 * engine refuses leaves everything as it was and `error` says why.
 */
export interface BackboneState {
  /** What the next (or current) engine start uses. */
  wanted: BackboneChoice;
  /** What the running engine has; null until one is running. */
  running: BackboneChoice | null;
  /** A new backbone is being loaded beside the running engine. */
  loading: boolean;
  /** The running backbone's weights file size and import time (`Trainer.create`). */
  weightsBytes: number | null;
  importMs: number | null;
  /** Why the last weights file was refused; cleared by the next load. */
  error: string | null;
  /** The memory the engine that refused it had grown to (its WebAssembly memory), when it said. */
  refusedMemoryBytes: number | null;
  /** Whether the running backbone came back from the last visit. */
  restored: boolean;
  /** Why the browser would not keep the weights file (a reload then uses the default). */
  storageProblem: string | null;
}

/**
 * Whether the pictures outlive a reload: 'loading' until the stored ones are back, 'saving' while
 * the browser keeps each new one, 'memory' when it cannot (then `problem` says why).
 */
export interface LibraryState {
  status: 'loading' | 'saving' | 'memory';
  /** Pictures brought back from the last visit; 0 when none (or after "Clear all"). */
  restored: number;
  problem: string | null;
  /** Whether storage worked for a while before it failed (so earlier pictures were kept). */
  partial: boolean;
  /**
   * Changes not yet in storage: pictures waiting for their batch, and writes the browser has not
   * finished. A reload now could lose them, so the page asks before it goes.
   */
  storing: number;
}

/**
 * Where a training run is: phase 1 ('features', then 'training' the head), phase 2 when asked
 * for ('caching' the frozen prefix's output, then 'fine-tuning'), then 'evaluating' the result.
 */
export type TrainPhase =
  | 'idle'
  | 'features'
  | 'training'
  | 'caching'
  | 'fine-tuning'
  | 'evaluating'
  | 'done'
  | 'stopped'
  | 'failed';

export interface EpochRecord extends EpochReport {
  stage: Phase;
  epochMs: number;
}

/** Phase 2's progress and outcome. */
export interface FineTuneState {
  /** Backbone units unfrozen. */
  unfreeze: number;
  cacheDone: number;
  cacheTotal: number;
  /** Memory of the cached prefix activations. */
  cacheBytes: number;
  cacheMs: number | null;
  fineMs: number | null;
  /** Early stopping ended phase 2 before its last epoch. */
  stoppedEarly: boolean;
  /** The phase-2 epoch whose weights were kept (0: the phase-1 model was kept, being more accurate). */
  bestEpoch: number | null;
}

export interface TrainingState {
  phase: TrainPhase;
  featuresDone: number;
  featuresTotal: number;
  featureMs: number | null;
  split: { train: number; val: number } | null;
  /** Settings the engine adjusted to the data, in its words (a batch larger than the split). */
  notes: string[];
  /** Both phases' epochs, phase 1's first. */
  epochs: EpochRecord[];
  trainMs: number | null;
  /** Null when the run trains the head only. */
  fine: FineTuneState | null;
  /** Validation metrics of the final model; null until evaluated (or without validation images). */
  evaluation: Evaluation | null;
  error: string | null;
  /** The user paused the run: the engine holds it between two steps until Resume (or Stop). */
  paused: boolean;
  /** When (ms since the run started) the current stage began, and the last event arrived. */
  stageStartMs: number;
  lastEventMs: number;
  /** What the run was asked to do (for the time left); null when idle. */
  plan: RunPlan | null;
  /** Requests the helper worker (the CPU engine's second core) answered in the run; null without one. */
  helperAnswers: number | null;
}

/** The model the last training produced; null when there is none or the data changed since. */
export interface ModelInfo {
  backboneName: string;
  classCount: number;
  /** Backbone units fine-tuned (phase 2); 0 when only the head was trained. */
  fineTuned: number;
}

export interface PredictionResult {
  id: number;
  fileName: string;
  predictions: Prediction[] | null;
  /** The picture, for its heatmap. */
  file: File;
  error: string | null;
}

export interface AppState {
  engine: EngineState;
  backbone: BackboneState;
  /** Class labels the user has brought, in order (a class may have no images yet). */
  classes: string[];
  /**
   * Changed in place (copying the map for each added picture made adding n pictures cost n²):
   * whoever changes it bumps `picturesVersion`, which views compare.
   */
  images: Map<number, HeldImage>;
  picturesVersion: number;
  /** Files waiting to be decoded by the worker. */
  adding: number;
  summary: DatasetSummary;
  problems: FileProblem[];
  /** A kept checkpoint of an interrupted (or running) training run, if there is one. */
  checkpoint: CheckpointInfo | null;
  /** SHA-256 of held pictures' bytes by key, to show exact duplicates (see duplicates.ts); changed in place, as `images`. */
  pictureHashes: Map<number, string>;
  hashesVersion: number;
  library: LibraryState;
  training: TrainingState;
  trained: ModelInfo | null;
  /** The format of the file being prepared for download, if one is. */
  exporting: ExportFormat | null;
  predictions: PredictionResult[];
  /** Messages about the page itself (engine start, crashes, downloads). */
  errors: { id: number; text: string }[];
}

export const EMPTY_SUMMARY: DatasetSummary = {
  classes: [],
  images: 0,
  trainable: false,
  problem: 'add at least two classes',
  recommendation: { unfreeze: 0, reason: 'Add your pictures first: the recipe depends on how many there are.' },
};

export function idleTraining(): TrainingState {
  return {
    phase: 'idle',
    featuresDone: 0,
    featuresTotal: 0,
    featureMs: null,
    split: null,
    notes: [],
    epochs: [],
    trainMs: null,
    fine: null,
    evaluation: null,
    error: null,
    paused: false,
    stageStartMs: 0,
    lastEventMs: 0,
    plan: null,
    helperAnswers: null,
  };
}

export function idleFineTune(unfreeze: number): FineTuneState {
  return {
    unfreeze,
    cacheDone: 0,
    cacheTotal: 0,
    cacheBytes: 0,
    cacheMs: null,
    fineMs: null,
    stoppedEarly: false,
    bestEpoch: null,
  };
}

export function initialState(choice: BackendChoice): AppState {
  return {
    engine: {
      status: 'starting',
      choice,
      backend: null,
      backboneName: null,
      inputSize: null,
      maxUnfreeze: null,
      unitsDescription: null,
      note: null,
      noteDetail: null,
      workers: null,
      lostGpu: null,
      memoryBytes: null,
    },
    backbone: {
      wanted: DEFAULT_BACKBONE_CHOICE,
      running: null,
      loading: false,
      weightsBytes: null,
      importMs: null,
      error: null,
      refusedMemoryBytes: null,
      restored: false,
      storageProblem: null,
    },
    classes: [],
    images: new Map(),
    picturesVersion: 0,
    adding: 0,
    summary: EMPTY_SUMMARY,
    problems: [],
    pictureHashes: new Map(),
    hashesVersion: 0,
    checkpoint: null,
    library: { status: 'loading', restored: 0, problem: null, partial: false, storing: 0 },
    training: idleTraining(),
    trained: null,
    exporting: null,
    predictions: [],
    errors: [],
  };
}

const BUSY: ReadonlySet<TrainPhase> = new Set(['features', 'training', 'caching', 'fine-tuning', 'evaluating']);

export function isTraining(state: AppState): boolean {
  return BUSY.has(state.training.phase);
}

/**
 * Why classes and pictures cannot be renamed, merged or moved now, or null: not while training
 * runs (the engine refuses too), nor while pictures are still being read or given back to a
 * (re)started engine, since those would land in the class as it was named before.
 */
export function editsBlocked(state: AppState): string | null {
  if (isTraining(state)) return 'Stop training first: classes cannot change while it runs.';
  if (state.adding > 0) return 'Wait until every picture is read.';
  if (state.summary.images < state.images.size) return 'Wait until the training engine has every picture back.';
  return null;
}

/**
 * What a view that does not show the training run's progress reads: every part of the state but
 * `training`, of which only whether a run is busy. While training runs only `training` changes,
 * several times a second; re-rendering every view each time cost frames of over 100 ms with
 * thousands of pictures. `images` and `pictureHashes` change in place, so their versions stand
 * in for them here.
 */
export function outsideProgress(state: AppState): unknown[] {
  return [...Object.entries(state).filter(([key]) => key !== 'training').map(([, value]) => value), isTraining(state)];
}

/** `render`, skipped when every value `reads` picks from the state is the same (by identity) as at its last run. */
export function whenChanged(reads: (state: AppState) => unknown[], render: (state: AppState) => void): (state: AppState) => void {
  let last: unknown[] | null = null;
  return (state) => {
    const next = reads(state);
    if (last !== null && next.length === last.length && next.every((value, i) => Object.is(value, last?.[i]))) return;
    last = next;
    render(state);
  };
}

type Listener = (state: AppState) => void;

export class Store {
  private listeners: Listener[] = [];
  private scheduled = false;

  constructor(private state: AppState) {}

  get(): AppState {
    return this.state;
  }

  /** Applies `change` to a shallow copy; listeners run once per animation frame at most. */
  update(change: (draft: AppState) => void): void {
    const draft = { ...this.state };
    change(draft);
    this.state = draft;
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      for (const listener of this.listeners) listener(this.state);
    });
  }

  subscribe(listener: Listener): void {
    this.listeners.push(listener);
    listener(this.state);
  }
}
