// The messages between the page and the training worker. Everything the worker can be asked
// is a `Request`; every answer is a `Reply` carrying the request's id; progress during long
// jobs arrives as `WorkerEvent`s; `Crashed` means the wasm instance is dead (a Rust panic) or
// cannot be used any more (its WebGPU device was lost).

import type { HelperReport } from './helper-link';

export type BackendChoice = 'auto' | 'webgpu' | 'cpu';
export type Backend = 'webgpu' | 'cpu';

/**
 * A failure the worker acts out on request, from the page's `?simulate=` URL parameter, so the
 * page's recovery can be tried (and tested) without a failing GPU or a file that kills the
 * engine:
 * - `gpu-loss`: when training starts on WebGPU, the worker fails as wgpu does when the device is
 *   lost;
 * - `crash-in-training`: the engine dies (as on a trap) after its first fine-tuning checkpoint;
 *   the page starts the next engine without the simulation;
 * - `crash-on-file` (`?simulate=crash-on-file&file=NAME`): the engine dies whenever it is given
 *   a picture whose file name is NAME;
 * - `helper-crash`: the helper worker (the CPU engine's second core) dies after answering three
 *   requests, in the middle of a run; training goes on with one core.
 */
export type Simulation =
  | { kind: 'gpu-loss' }
  | { kind: 'helper-crash' }
  | { kind: 'crash-in-training' }
  | { kind: 'crash-on-file'; fileName: string };

/** The simulation a page's URL asks for (see `Simulation`), if any. */
export function simulationOf(parameters: URLSearchParams): Simulation | null {
  switch (parameters.get('simulate')) {
    case 'gpu-loss':
      return { kind: 'gpu-loss' };
    case 'crash-in-training':
      return { kind: 'crash-in-training' };
    case 'helper-crash':
      return { kind: 'helper-crash' };
    case 'crash-on-file': {
      const fileName = parameters.get('file');
      return fileName ? { kind: 'crash-on-file', fileName } : null;
    }
    default:
      return null;
  }
}

/** The architectures the engine can build (`Trainer.create`'s first argument). */
export type BackboneName = 'efficientnet_lite0' | 'mobilenet_v2' | 'resnet18' | 'resnet50';

export const DEFAULT_BACKBONE: BackboneName = 'efficientnet_lite0';

/** The engine's limit on a picture file, generated from its Rust constant. */
export { MAX_FILE_BYTES } from './generated';

/** Where the backbone's weights come from: the file the page serves, or one the user brought. */
export type WeightsSource =
  | { kind: 'bundled'; url: string }
  /** `.pth`/`.pt` (PyTorch state dict) or `.safetensors`; the engine tells the format by its bytes. */
  | { kind: 'file'; fileName: string; file: Blob };

/** The file formats the trained classifier can be saved in (see `Trainer.exportSafetensors`/`exportOnnx`). */
export type ExportFormat = 'safetensors' | 'onnx';

/** The engine's types, generated from its Rust types (src/boundary.rs): never written by hand. */
export type {
  Augmentation,
  DatasetSummary as EngineDataset,
  EngineInfo as EngineFacts,
  EpochReport,
  ErrorInfo,
  ErrorKind,
  Evaluation as EngineEvaluation,
  Event as EngineEvent,
  Outcome,
  Phase,
  Prediction,
  Recipe,
  Recommendation,
  Setting,
  Started,
} from './generated';
import type {
  DuplicateGroup,
  DuplicatePicture,
  GradCam,
  Suspect,
  DatasetSummary as EngineDataset,
  ErrorInfo,
  Evaluation as EngineEvaluation,
  Event as EngineEvent,
  Outcome,
  Phase,
  Prediction,
  Recipe,
  Recommendation,
  Started,
  Augmentation,
} from './generated';

export interface ClassSummary {
  label: string;
  count: number;
}

/** The pictures as the engine has them and the recipe it recommends for them. */
export type DatasetSummary = EngineDataset & { recommendation: Recommendation };

/** Validation metrics of the model as trained; misclassified pictures named by the page's key. */
export type Evaluation = Omit<EngineEvaluation, 'misclassified'> & { misclassified: Misclassified[] };

export interface Misclassified {
  /** The page's key of the picture (see `addImage`); null if the engine's id is unknown. */
  key: number | null;
  fileName: string;
  trueLabel: string;
  predictedLabel: string;
  /** The probability the model gave its (wrong) prediction. */
  probability: number;
}

/**
 * An engine event as the page receives it during a run (`finished` ends the `train` request
 * instead): evaluations name pictures by the page's key.
 */
export type TrainingEvent = Exclude<EngineEvent, { type: 'evaluated' } | { type: 'finished' }> | { type: 'evaluated'; evaluation: Evaluation };

/** A Grad-CAM with its overlay: the center crop with the heatmap over it (RGBA, `size`² pixels). */
export type HeatmapData = GradCam & { overlay: Uint8Array };

/** A picture of a label check, named by the page's key (null if the engine's id is unknown). */
type Keyed<T extends { imageId: number }> = Omit<T, 'imageId'> & { key: number | null };

/** What `checkLabels` finds: suspects most suspicious first, then duplicate groups. */
export interface LabelCheck {
  suspects: Keyed<Suspect>[];
  checked: number;
  folds: number;
  duplicates: (Omit<DuplicateGroup, 'pictures'> & { pictures: Keyed<DuplicatePicture>[] })[];
}

/** Requests, told apart by `type`. */
export type Request =
  /** Starts the engine on `backbone` with `weights`; a file that does not fit is refused, naming the tensor. */
  | { type: 'init'; backend: BackendChoice; backbone: BackboneName; weights: WeightsSource; simulate: Simulation | null; workers: number }
  | { type: 'addClass'; label: string }
  /**
   * `key` is the page's own id of the picture, given back in evaluation results. `compact`: the
   * file is the engine's compact copy of the picture (see `ReplyData.addImage`), which it takes
   * back in milliseconds; otherwise a file as the user gave it.
   */
  | { type: 'addImage'; key: number; label: string; fileName: string; file: Blob; compact: boolean }
  | { type: 'removeClass'; label: string }
  /** Renames a class (to is trimmed; another class's name is refused: that is a merge). Features are kept. */
  | { type: 'renameClass'; from: string; to: string }
  /** Moves every picture of `from` into `into` and removes `from`. */
  | { type: 'mergeClasses'; from: string; into: string }
  /** Moves the picture the page knows as `key` to the existing class `label`. */
  | { type: 'movePicture'; key: number; label: string }
  /** Removes the picture the page knows as `key`; its class stays. */
  | { type: 'removePicture'; key: number }
  /** Runs the whole recipe; its events arrive as `WorkerEvent`s until it finishes or is stopped. */
  | { type: 'train'; recipe: Recipe }
  | { type: 'stopTraining' }
  /** Holds the run between two steps (the engine keeps its state) until `paused: false`. */
  | { type: 'pauseTraining'; paused: boolean }
  | { type: 'export'; format: ExportFormat }
  /** Reopens a webtune export (a saved project's model): predictions and exports use it until the next run. */
  | { type: 'loadModel'; file: Blob }
  | { type: 'predict'; fileName: string; file: Blob }
  /** Grad-CAM of class `classIndex` (the predicted class when null) for a picture file. */
  | { type: 'gradCam'; fileName: string; file: Blob; classIndex: number | null }
  /** The pictures most likely mislabelled (at most `limit`), then exact and near duplicates. */
  | { type: 'checkLabels'; limit: number }
  /** Training views of one picture drawn as phase 2 draws them (RGBA, `count` squares of `inputSize`). */
  | { type: 'augmentedViews'; fileName: string; file: Blob; augmentation: Augmentation; count: number; seed: number };

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
  /**
   * Workers that train: 2 when the CPU engine has a helper worker on a second core computing half
   * of each fine-tuning batch (src/train/data_parallel.rs), else 1.
   */
  workers: number;
  summary: DatasetSummary;
}

/** What a training request resolves to: how the run ended (its events came before). */
export interface TrainResult {
  started: Started;
  outcome: Outcome;
  /** What the helper worker did in this run; null without one. */
  helper: HelperReport | null;
}

/** What each request resolves to. */
export interface ReplyData {
  init: EngineInfo;
  addClass: { summary: DatasetSummary };
  /**
   * `compact`: the picture as the engine keeps it (resized to the backbone's resize size, a JPEG
   * of a few tens of kB, `Trainer.compactImage`). The page keeps it instead of the original, for
   * the browser's storage and for the next engine; equal pictures give equal bytes. Null when the
   * request gave a compact copy and the engine kept it as it was.
   */
  addImage: { summary: DatasetSummary; compact: Blob | null };
  removeClass: { summary: DatasetSummary };
  /** `label`: the new name as the engine keeps it (trimmed). */
  renameClass: { summary: DatasetSummary; label: string };
  mergeClasses: { summary: DatasetSummary };
  movePicture: { summary: DatasetSummary };
  removePicture: { summary: DatasetSummary };
  train: TrainResult;
  stopTraining: Record<string, never>;
  pauseTraining: Record<string, never>;
  export: { bytes: Uint8Array };
  loadModel: { labels: string[] };
  predict: { predictions: Prediction[] };
  gradCam: { cam: HeatmapData };
  checkLabels: LabelCheck;
  augmentedViews: { pixels: Uint8Array; size: number };
}

export interface Envelope {
  id: number;
  request: Request;
}

/**
 * Every reply and event carries `memoryBytes`: the size of the engine's WebAssembly memory when it
 * was sent, as the browser reports it (`WebAssembly.Memory`). That memory only grows, so it is also
 * the engine's peak so far; it is most of the tab's memory on the CPU backend (pictures, features,
 * the model), and everything but the GPU's buffers on WebGPU.
 */
export type Reply =
  | { kind: 'reply'; id: number; ok: true; data: ReplyData[RequestType]; memoryBytes: number }
  | { kind: 'reply'; id: number; ok: false; error: ErrorInfo; memoryBytes: number };

/** An engine event during a `train` request, with the time since the run started. */
export interface WorkerEvent {
  kind: 'event';
  event: TrainingEvent;
  elapsedMs: number;
  memoryBytes: number;
}

export interface Crashed {
  kind: 'crashed';
  message: string;
}

/**
 * The model after phase 1 or a fine-tuning epoch, as a webtune export (safetensors), sent during a
 * `train` request: the page keeps it so that a reload or a crash can continue from it.
 */
export interface Checkpoint {
  kind: 'checkpoint';
  bytes: Uint8Array;
  phase: Phase;
  epoch: number;
}

export type WorkerMessage = Reply | WorkerEvent | Crashed | Checkpoint;
