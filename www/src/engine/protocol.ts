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

/** The architectures the engine can build (`Trainer.create`'s first argument). */
export type BackboneName = 'efficientnet_lite0' | 'mobilenet_v2' | 'resnet18' | 'resnet50';

export const DEFAULT_BACKBONE: BackboneName = 'efficientnet_lite0';

/** Where the backbone's weights come from: the file the page serves, or one the user brought. */
export type WeightsSource =
  | { kind: 'bundled'; url: string }
  /** `.pth`/`.pt` (PyTorch state dict) or `.safetensors`; the engine tells the format by its bytes. */
  | { kind: 'file'; fileName: string; file: Blob };

/** The file formats the trained classifier can be saved in (see `Trainer.exportSafetensors`/`exportOnnx`). */
export type ExportFormat = 'safetensors' | 'onnx';

export interface ClassSummary {
  label: string;
  count: number;
}

/** The recipe the data size calls for: `unfreeze` 0 means train the head only. */
export interface Recommendation {
  unfreeze: number;
  reason: string;
}

export interface DatasetSummary {
  classes: ClassSummary[];
  images: number;
  trainable: boolean;
  /** Why training is not possible yet; null when it is. */
  problem: string | null;
  recommendation: Recommendation;
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

/** Phase 2 (fine-tuning the last backbone blocks with the head); `unfreeze` 0 skips it. */
export interface FineTuneSettings {
  unfreeze: number;
  epochs: number;
  /** The head's peak rate; the unfrozen blocks get `learningRate * backboneLrFactor`. */
  learningRate: number;
  backboneLrFactor: number;
  labelSmoothing: number;
  /** Epochs without a better validation loss before stopping (the best epoch's weights are kept). */
  patience: number;
  batchSize: number;
  viewsPerImage: number;
  augmentation: AugmentationSettings;
}

export interface AugmentationSettings {
  enabled: boolean;
  /** Smallest share of the picture a random crop covers. */
  minCropArea: number;
  horizontalFlip: boolean;
  /** Largest relative change of brightness, contrast and saturation. */
  colorJitter: number;
}

export const DEFAULT_FINE_TUNE: Omit<FineTuneSettings, 'unfreeze'> = {
  epochs: 10,
  learningRate: 1e-3,
  backboneLrFactor: 0.1,
  labelSmoothing: 0.1,
  patience: 3,
  batchSize: 16,
  viewsPerImage: 2,
  augmentation: { enabled: true, minCropArea: 0.5, horizontalFlip: true, colorJitter: 0.1 },
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

/** Validation metrics of the model as trained, from the engine's `evaluate()`. */
export interface Evaluation {
  images: number;
  loss: number;
  accuracy: number;
  classes: { label: string; precision: number | null; recall: number | null; support: number }[];
  /** `confusion[true][predicted]` counts, classes in the order of `classes`. */
  confusion: number[][];
  misclassified: Misclassified[];
}

export interface Misclassified {
  /** The page's key of the picture (see `addImage`); null if the engine's id is unknown. */
  key: number | null;
  fileName: string;
  trueLabel: string;
  predictedLabel: string;
  /** The probability the model gave its (wrong) prediction. */
  probability: number;
}

export interface Prediction {
  label: string;
  probability: number;
}

/** Requests, told apart by `type`. */
export type Request =
  /** Starts the engine on `backbone` with `weights`; a file that does not fit is refused, naming the tensor. */
  | { type: 'init'; backend: BackendChoice; backbone: BackboneName; weights: WeightsSource; simulate: Simulation | null }
  | { type: 'addClass'; label: string }
  /** `key` is the page's own id of the picture, given back in evaluation results. */
  | { type: 'addImage'; key: number; label: string; fileName: string; file: Blob }
  | { type: 'removeClass'; label: string }
  | { type: 'train'; settings: TrainSettings }
  | { type: 'fineTune'; settings: FineTuneSettings; seed: number }
  | { type: 'evaluate' }
  | { type: 'stopTraining' }
  | { type: 'export'; format: ExportFormat }
  | { type: 'predict'; fileName: string; file: Blob };

export type RequestType = Request['type'];
export type RequestOf<T extends RequestType> = Extract<Request, { type: T }>;

export interface EngineInfo {
  backend: Backend;
  backboneName: BackboneName;
  inputSize: number;
  /** Backbone units phase 2 can unfreeze, counted from the end, and what one unit is. */
  maxUnfreeze: number;
  unitsDescription: string;
  /** Size of the weights file, and how long building the backbone from it took (`Trainer.create`). */
  weightsBytes: number;
  importMs: number;
  /** Set when the backend in use is not the one asked for (auto fell back to CPU). */
  note: string | null;
  /** Why, in the engine's words (long: adapter errors). */
  noteDetail: string | null;
  summary: DatasetSummary;
}

/** Phase 1: the head on cached backbone features. */
export interface TrainResult {
  train: number;
  val: number;
  /** A setting the engine adjusted to the data, in words (a batch larger than the split). */
  note: string | null;
  /** The last epoch run; null when stopped before the first epoch finished. */
  last: EpochReport | null;
  stopped: boolean;
  featureMs: number;
  trainMs: number;
}

/** Phase 2: the prefix cache is built, then the unfrozen tail and the head train together. */
export interface FineTuneResult {
  /** Views cached, and the memory they take. */
  views: number;
  cacheBytes: number;
  cacheMs: number;
  /** The last epoch run; null when stopped before the first epoch finished. */
  last: EpochReport | null;
  stopped: boolean;
  /** Early stopping ended the run (validation loss stopped improving); the best epoch's weights are kept. */
  stoppedEarly: boolean;
  fineMs: number;
}

/** What each request resolves to. */
export interface ReplyData {
  init: EngineInfo;
  addClass: { summary: DatasetSummary };
  addImage: { summary: DatasetSummary };
  removeClass: { summary: DatasetSummary };
  train: TrainResult;
  fineTune: FineTuneResult;
  evaluate: Evaluation;
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
  | { kind: 'event'; type: 'split'; train: number; val: number; note: string | null }
  | { kind: 'event'; type: 'epoch'; stage: Stage; report: EpochReport; epochMs: number; elapsedMs: number }
  | { kind: 'event'; type: 'cache'; done: number; total: number; bytes: number; note: string | null; elapsedMs: number };

/** Which phase of the recipe an epoch belongs to: 1 trains the head, 2 fine-tunes. */
export type Stage = 'head' | 'fine';

export interface Crashed {
  kind: 'crashed';
  message: string;
}

export type WorkerMessage = Reply | WorkerEvent | Crashed;
