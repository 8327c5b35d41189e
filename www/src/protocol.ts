// The messages between the page and the training worker. Everything the worker can be asked
// is a `Request`; every answer is a `Reply` carrying the request's id; progress during long
// jobs arrives as `WorkerEvent`s; `Crashed` means the wasm instance is dead (a Rust panic) or
// cannot be used any more (its WebGPU device was lost).

export type BackendChoice = 'auto' | 'webgpu' | 'cpu';
export type Backend = 'webgpu' | 'cpu';

/**
 * A failure the worker acts out on request, from the page's `?simulate=` URL parameter, so the
 * page's recovery can be tried without a failing GPU. `gpu-loss`: when training starts on WebGPU,
 * the worker fails as wgpu does when the device is lost.
 */
export type Simulation = 'gpu-loss';

export interface ClassSummary {
  label: string;
  count: number;
}

export interface DatasetSummary {
  classes: ClassSummary[];
  images: number;
  trainable: boolean;
  /** Why training is not possible yet; null when it is. */
  problem: string | null;
}

export interface TrainSettings {
  epochs: number;
  learningRate: number;
  batchSize: number;
  hiddenUnits: number;
  dropout: number;
  valFraction: number;
  seed: number;
}

export const DEFAULT_SETTINGS: TrainSettings = {
  epochs: 20,
  learningRate: 1e-3,
  batchSize: 32,
  hiddenUnits: 0,
  dropout: 0.2,
  valFraction: 0.15,
  seed: 42,
};

export interface EpochReport {
  epoch: number;
  epochs: number;
  trainLoss: number;
  trainAccuracy: number;
  valLoss: number | null;
  valAccuracy: number | null;
  done: boolean;
}

export interface Prediction {
  label: string;
  probability: number;
}

/** Requests, told apart by `type`. */
export type Request =
  | { type: 'init'; backend: BackendChoice; weightsUrl: string; simulate: Simulation | null }
  | { type: 'addClass'; label: string }
  | { type: 'addImage'; label: string; fileName: string; file: Blob }
  | { type: 'removeClass'; label: string }
  | { type: 'train'; settings: TrainSettings }
  | { type: 'stopTraining' }
  | { type: 'export' }
  | { type: 'predict'; fileName: string; file: Blob };

export type RequestType = Request['type'];
export type RequestOf<T extends RequestType> = Extract<Request, { type: T }>;

export interface EngineInfo {
  backend: Backend;
  backboneName: string;
  inputSize: number;
  /** Set when the backend in use is not the one asked for (auto fell back to CPU). */
  note: string | null;
  /** Why, in the engine's words (long: adapter errors). */
  noteDetail: string | null;
  summary: DatasetSummary;
}

export interface TrainResult {
  train: number;
  val: number;
  /** The last epoch run; null when stopped before the first epoch finished. */
  last: EpochReport | null;
  stopped: boolean;
  featureMs: number;
  trainMs: number;
}

/** What each request resolves to. */
export interface ReplyData {
  init: EngineInfo;
  addClass: { summary: DatasetSummary };
  addImage: { summary: DatasetSummary };
  removeClass: { summary: DatasetSummary };
  train: TrainResult;
  stopTraining: Record<string, never>;
  export: { bytes: Uint8Array };
  predict: { predictions: Prediction[] };
}

export interface Envelope {
  id: number;
  request: Request;
}

export type Reply =
  | { kind: 'reply'; id: number; ok: true; data: ReplyData[RequestType] }
  | { kind: 'reply'; id: number; ok: false; error: string };

export type WorkerEvent =
  | { kind: 'event'; type: 'features'; done: number; total: number; elapsedMs: number }
  | { kind: 'event'; type: 'split'; train: number; val: number }
  | { kind: 'event'; type: 'epoch'; report: EpochReport; epochMs: number; elapsedMs: number };

export interface Crashed {
  kind: 'crashed';
  message: string;
}

export type WorkerMessage = Reply | WorkerEvent | Crashed;
