// The training worker: owns the one wasm instance and its Trainer. Requests run one at a time
// (the Trainer is `&mut self` on the Rust side); only `stopTraining` jumps the queue.

import init, { Trainer, initPanicHook } from '../pkg/webtune.js';
import wasmUrl from '../pkg/webtune_bg.wasm?url';
import type {
  BackboneName,
  DatasetSummary,
  Envelope,
  EpochReport,
  Evaluation,
  FineTuneResult,
  FineTuneSettings,
  Prediction,
  Recommendation,
  ReplyData,
  Request,
  RequestType,
  Simulation,
  Stage,
  TrainResult,
  TrainSettings,
  WeightsSource,
  WorkerMessage,
} from './protocol';

/** The parts of DedicatedWorkerGlobalScope used here (the DOM lib types `self` as a Window). */
interface WorkerScope {
  postMessage(message: WorkerMessage, transfer?: Transferable[]): void;
  addEventListener(type: 'message', listener: (event: MessageEvent<Envelope>) => void): void;
  addEventListener(type: 'error', listener: (event: ErrorEvent) => void): void;
  addEventListener(type: 'unhandledrejection', listener: (event: PromiseRejectionEvent) => void): void;
}
const scope = self as unknown as WorkerScope;

/** Images per extractFeatures call: small enough for frequent progress, big enough to batch. */
const FEATURE_CHUNK = 4;
/** Views per cacheViews call, for the same reason. */
const CACHE_CHUNK = 4;

let trainer: Trainer | null = null;
let queue: Promise<void> = Promise.resolve();
let stopRequested = false;
let dead = false;
let lastPanic: string | null = null;
let simulate: Simulation | null = null;
/** The page's key of each picture, by the engine's image id (evaluation names pictures by id). */
const pageKeys = new Map<number, number>();

// A Rust panic is printed by the panic hook through console.error, and then the instance traps.
// Remember the message so the page can show it, and report the crash at once: after a panic the
// promise the page waits for may never settle.
const consoleError = console.error.bind(console);
console.error = (...args: unknown[]) => {
  consoleError(...args);
  const text = args.map(String).join(' ');
  const panic = /panicked at ([^\n]+?):?\n([\s\S]*?)(?:\n\nStack|$)/.exec(text);
  if (panic) {
    lastPanic = `${panic[2].trim()} (Rust panic at ${panic[1]})`;
    crash(lastPanic);
  }
};
scope.addEventListener('error', (event) => {
  crash(event.message || String(event.error));
});
scope.addEventListener('unhandledrejection', (event) => {
  if (isCrash(event.reason)) crash(messageOf(event.reason));
});

function crash(message: string): void {
  if (dead) return;
  dead = true;
  scope.postMessage({ kind: 'crashed', message: lastPanic ?? message });
}

/**
 * A trap (panic = abort, out of memory) means the instance is gone, unlike an Err from Rust; so
 * does a lost WebGPU device, which fails every later call on it.
 */
function isCrash(error: unknown): boolean {
  return dead || error instanceof WebAssembly.RuntimeError || isDeviceLost(error);
}

/**
 * wgpu says "Parent device is lost", cubecl "the wgpu device was lost" and, on the operations
 * after it, `DevicePoisoned`; the Rust side passes these on as Backend errors (Debug-formatted).
 */
function isDeviceLost(error: unknown): boolean {
  return /\bdevice\b[^.\n]{0,40}\blost\b|\blost\b[^.\n]{0,20}\bdevice\b|DevicePoison|\bpoisoned\b/i.test(messageOf(error));
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

function requireTrainer(): Trainer {
  if (!trainer) throw new Error('the training engine is not initialised');
  return trainer;
}

async function bytesOf(file: Blob): Promise<Uint8Array> {
  return new Uint8Array(await file.arrayBuffer());
}

/** A copy unless `bytes` already owns its whole (non-shared) buffer, which can then be transferred. */
function ownBuffer(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const whole = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
  if (whole && bytes.buffer instanceof ArrayBuffer) return bytes as Uint8Array<ArrayBuffer>;
  return bytes.slice();
}

function summary(): DatasetSummary {
  const t = requireTrainer();
  const { classes, images, trainable, problem } = t.summary() as Omit<DatasetSummary, 'recommendation'>;
  return { classes, images, trainable, problem, recommendation: t.recommendation() as Recommendation };
}

/** The weights file's bytes: downloaded from the page's origin, or read from the user's file. */
async function weightsBytes(weights: WeightsSource): Promise<Uint8Array> {
  if (weights.kind === 'file') {
    try {
      return await bytesOf(weights.file);
    } catch (error) {
      throw new Error(`could not read ${weights.fileName}: ${messageOf(error)}`);
    }
  }
  let response: Response;
  try {
    response = await fetch(weights.url);
  } catch (error) {
    throw new Error(`could not download the backbone weights (${weights.url}): ${messageOf(error)}`);
  }
  if (!response.ok) {
    throw new Error(
      `could not download the backbone weights (${weights.url}): HTTP ${response.status} ${response.statusText}`,
    );
  }
  return new Uint8Array(await response.arrayBuffer());
}

async function start(backend: string, backbone: BackboneName, weights: WeightsSource): Promise<ReplyData['init']> {
  if (trainer) throw new Error('the training engine is already initialised');
  await init({ module_or_path: wasmUrl });
  initPanicHook();
  const bytes = await weightsBytes(weights);
  const importStart = performance.now();
  trainer = await Trainer.create(backbone, bytes, backend);
  const importMs = performance.now() - importStart;
  const inUse = trainer.backend() as 'webgpu' | 'cpu';
  // Set when "auto" fell back to the CPU, saying why.
  const noteDetail = trainer.backendNote() ?? null;
  const note =
    backend === 'auto' && inUse === 'cpu'
      ? 'WebGPU is not available in this browser, so training runs on the CPU (WebAssembly).'
      : null;
  return {
    backend: inUse,
    backboneName: trainer.backboneName() as BackboneName,
    inputSize: trainer.inputSize(),
    maxUnfreeze: trainer.maxUnfreeze(),
    unitsDescription: trainer.unitsDescription(),
    weightsBytes: bytes.byteLength,
    importMs,
    note,
    noteDetail,
    summary: summary(),
  };
}

async function train(settings: TrainSettings, post: (m: WorkerMessage) => void): Promise<TrainResult> {
  const t = requireTrainer();
  stopRequested = false;

  const featureStart = performance.now();
  let pending = t.pendingFeatures();
  const total = pending;
  post({ kind: 'event', type: 'features', done: 0, total, elapsedMs: 0 });
  if (simulate === 'gpu-loss' && t.backend() === 'webgpu') {
    throw new Error('the WebGPU device was lost (simulated: the page was opened with ?simulate=gpu-loss)');
  }
  while (pending > 0) {
    if (stopRequested) {
      return { train: 0, val: 0, note: null, last: null, stopped: true, featureMs: performance.now() - featureStart, trainMs: 0 };
    }
    pending = await t.extractFeatures(FEATURE_CHUNK);
    const elapsedMs = performance.now() - featureStart;
    post({ kind: 'event', type: 'features', done: total - pending, total, elapsedMs });
  }
  const featureMs = performance.now() - featureStart;

  const split = t.startHead(settings) as { train: number; val: number; note: string | null };
  post({ kind: 'event', type: 'split', ...split });

  const { last, ms } = await runEpochs('head', () => t.trainEpoch(), post);
  return {
    ...split,
    last,
    stopped: !last?.done,
    featureMs,
    trainMs: ms,
  };
}

/** Runs one phase's epochs until the engine says done or the user stops, posting each. */
async function runEpochs(
  stage: Stage,
  epoch: () => Promise<unknown>,
  post: (m: WorkerMessage) => void,
): Promise<{ last: EpochReport | null; ms: number }> {
  const start = performance.now();
  let last: EpochReport | null = null;
  while (!last?.done) {
    if (stopRequested) break;
    const epochStart = performance.now();
    last = (await epoch()) as EpochReport;
    const now = performance.now();
    post({ kind: 'event', type: 'epoch', stage, report: last, epochMs: now - epochStart, elapsedMs: now - start });
  }
  return { last, ms: performance.now() - start };
}

/** What startFineTune and cacheViews return: views cached so far, their memory, and a setting adjusted to the data. */
interface CacheProgress {
  done: number;
  total: number;
  bytes: number;
  note: string | null;
}

/** Phase 2 on the model phase 1 left: cache the frozen prefix's output per view, then train. */
async function fineTune(settings: FineTuneSettings, seed: number, post: (m: WorkerMessage) => void): Promise<FineTuneResult> {
  const t = requireTrainer();
  // Not reset here: a Stop pressed while phase 1 ended still ends the recipe.
  const { augmentation, viewsPerImage, ...options } = settings;
  const cacheStart = performance.now();
  let progress = t.startFineTune({ ...options, seed }, augmentation, viewsPerImage) as CacheProgress;
  const views = progress.total;
  post({ kind: 'event', type: 'cache', ...progress, elapsedMs: 0 });
  const stopped = (cacheMs: number): FineTuneResult => ({
    views,
    cacheBytes: progress.bytes,
    cacheMs,
    last: null,
    stopped: true,
    stoppedEarly: false,
    fineMs: 0,
  });
  while (progress.done < progress.total) {
    if (stopRequested) return stopped(performance.now() - cacheStart);
    progress = (await t.cacheViews(CACHE_CHUNK)) as CacheProgress;
    post({ kind: 'event', type: 'cache', ...progress, elapsedMs: performance.now() - cacheStart });
  }
  const cacheMs = performance.now() - cacheStart;

  const { last, ms: fineMs } = await runEpochs('fine', () => t.fineTuneEpoch(), post);
  return {
    views,
    cacheBytes: progress.bytes,
    cacheMs,
    last,
    stopped: !last?.done,
    // `done` before the last planned epoch means the validation loss stopped improving.
    stoppedEarly: last !== null && last.done && last.epoch < last.epochs,
    fineMs,
  };
}

/** The engine names misclassified pictures by its image id; the page knows them by its key. */
async function evaluate(): Promise<Evaluation> {
  const result = (await requireTrainer().evaluate()) as Omit<Evaluation, 'misclassified'> & {
    misclassified: (Omit<Evaluation['misclassified'][number], 'key'> & { imageId: number })[];
  };
  return {
    ...result,
    misclassified: result.misclassified.map(({ imageId, ...rest }) => ({ key: pageKeys.get(imageId) ?? null, ...rest })),
  };
}

async function dispatch(request: Request): Promise<{ data: ReplyData[RequestType]; transfer?: Transferable[] }> {
  switch (request.type) {
    case 'init':
      simulate = request.simulate;
      return { data: await start(request.backend, request.backbone, request.weights) };
    case 'addClass':
      requireTrainer().addClass(request.label);
      return { data: { summary: summary() } };
    case 'addImage': {
      const bytes = await bytesOf(request.file);
      const id = requireTrainer().addImage(request.label, request.fileName, bytes);
      pageKeys.set(id, request.key);
      return { data: { summary: summary() } };
    }
    case 'removeClass':
      requireTrainer().removeClass(request.label);
      return { data: { summary: summary() } };
    case 'train':
      return { data: await train(request.settings, (m) => scope.postMessage(m)) };
    case 'fineTune':
      return { data: await fineTune(request.settings, request.seed, (m) => scope.postMessage(m)) };
    case 'evaluate':
      return { data: await evaluate() };
    case 'stopTraining':
      stopRequested = true;
      return { data: {} };
    case 'export': {
      const t = requireTrainer();
      const bytes = ownBuffer(await (request.format === 'onnx' ? t.exportOnnx() : t.exportSafetensors()));
      return { data: { bytes }, transfer: [bytes.buffer] };
    }
    case 'predict': {
      const bytes = await bytesOf(request.file);
      const predictions = (await requireTrainer().predict(request.fileName, bytes)) as Prediction[];
      return { data: { predictions } };
    }
  }
}

async function handle({ id, request }: Envelope): Promise<void> {
  if (dead) return;
  try {
    const { data, transfer } = await dispatch(request);
    if (!dead) scope.postMessage({ kind: 'reply', id, ok: true, data }, transfer);
  } catch (error) {
    if (isCrash(error)) {
      crash(messageOf(error));
    } else {
      scope.postMessage({ kind: 'reply', id, ok: false, error: messageOf(error) });
    }
  }
}

scope.addEventListener('message', (event) => {
  const envelope = event.data;
  if (envelope.request.type === 'stopTraining') {
    void handle(envelope);
    return;
  }
  queue = queue.then(() => handle(envelope));
});
