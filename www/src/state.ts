// The one place the page's state lives. Views read it and re-render on change; only the app
// (app.ts) writes it.

import type { Backend, BackendChoice, DatasetSummary, EpochReport, Prediction } from './protocol';

/** A picture the page holds, so it can be given to a restarted worker. */
export interface HeldImage {
  key: number;
  label: string;
  /** Where it came from, as shown to the user (e.g. "cats/tom.jpg"). */
  path: string;
  file: File;
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
  backboneName: string | null;
  inputSize: number | null;
  note: string | null;
  noteDetail: string | null;
  /** Set when the GPU stopped responding and the page moved to the CPU: what the engine said. */
  lostGpu: string | null;
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
}

export type TrainPhase = 'idle' | 'features' | 'training' | 'done' | 'stopped' | 'failed';

export interface EpochRecord extends EpochReport {
  epochMs: number;
}

export interface TrainingState {
  phase: TrainPhase;
  featuresDone: number;
  featuresTotal: number;
  featureMs: number | null;
  split: { train: number; val: number } | null;
  epochs: EpochRecord[];
  trainMs: number | null;
  error: string | null;
}

/** The model the last training produced; null when there is none or the data changed since. */
export interface TrainedModel {
  backboneName: string;
  classCount: number;
}

export interface PredictionResult {
  id: number;
  fileName: string;
  predictions: Prediction[] | null;
  error: string | null;
}

export interface AppState {
  engine: EngineState;
  /** Class labels the user has brought, in order (a class may have no images yet). */
  classes: string[];
  images: Map<number, HeldImage>;
  /** Files waiting to be decoded by the worker. */
  adding: number;
  summary: DatasetSummary;
  problems: FileProblem[];
  library: LibraryState;
  training: TrainingState;
  trained: TrainedModel | null;
  exporting: boolean;
  predictions: PredictionResult[];
  /** Messages about the page itself (engine start, crashes, downloads). */
  errors: { id: number; text: string }[];
}

export const EMPTY_SUMMARY: DatasetSummary = {
  classes: [],
  images: 0,
  trainable: false,
  problem: 'add at least two classes',
};

export function idleTraining(): TrainingState {
  return {
    phase: 'idle',
    featuresDone: 0,
    featuresTotal: 0,
    featureMs: null,
    split: null,
    epochs: [],
    trainMs: null,
    error: null,
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
      note: null,
      noteDetail: null,
      lostGpu: null,
    },
    classes: [],
    images: new Map(),
    adding: 0,
    summary: EMPTY_SUMMARY,
    problems: [],
    library: { status: 'loading', restored: 0, problem: null, partial: false },
    training: idleTraining(),
    trained: null,
    exporting: false,
    predictions: [],
    errors: [],
  };
}

export function isTraining(state: AppState): boolean {
  return state.training.phase === 'features' || state.training.phase === 'training';
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
