// The training worker: owns the one wasm instance and its Trainer. Requests run one at a time
// (the Trainer is `&mut self` on the Rust side); only `stopTraining` and `pauseTraining` jump the queue.

import init, { Trainer, initPanicHook } from '../../pkg/webtune.js';
import wasmUrl from '../../pkg/webtune_bg.wasm?url';
import type {
  BackboneName,
  DatasetSummary,
  EngineFacts,
  EngineEvent,
  Envelope,
  HeatmapData,
  LabelCheck,
  ErrorInfo,
  Evaluation,
  Outcome,
  Phase,
  Prediction,
  ReplyData,
  Request,
  RequestType,
  Simulation,
  Started,
  TrainingEvent,
  WeightsSource,
  WorkerMessage,
} from './protocol';
import { MAX_FILE_BYTES } from './protocol';
import { HelperLink } from './helper-link';
import type { DuplicateGroup, Overview, Recipe, SuspectReport } from './generated';

/** The parts of DedicatedWorkerGlobalScope used here (the DOM lib types `self` as a Window). */
interface WorkerScope {
  postMessage(message: WorkerMessage, transfer?: Transferable[]): void;
  addEventListener(type: 'message', listener: (event: MessageEvent<Envelope>) => void): void;
  addEventListener(type: 'error', listener: (event: ErrorEvent) => void): void;
  addEventListener(type: 'unhandledrejection', listener: (event: PromiseRejectionEvent) => void): void;
}
const scope = self as unknown as WorkerScope;

/**
 * Pictures or views per engine step: small enough for frequent progress (and a quick Stop),
 * big enough to batch.
 */
const STEP_BUDGET = 4;

let trainer: Trainer | null = null;
/** The CPU engine's helper on a second core, when there is one. */
let helper: HelperLink | null = null;
/** The wasm instance's memory, once `init` has loaded it. */
let memory: WebAssembly.Memory | null = null;
let queue: Promise<void> = Promise.resolve();
let stopRequested = false;
/** While a run is paused: wakes it (on Resume or Stop). */
let wake: (() => void) | null = null;
let paused = false;
let dead = false;
let lastPanic: string | null = null;
let simulate: Simulation | null = null;
/** The page's key of each picture, by the engine's image id (evaluation names pictures by id). */
const pageKeys = new Map<number, number>();
/** The engine's image id of each picture, by the page's key (the page names pictures by key). */
const engineIds = new Map<number, number>();

/** The engine's id of the picture the page knows as `key`; refused as the engine refuses unknown ones. */
function engineId(key: number): number {
  const id = engineIds.get(key);
  if (id === undefined) {
    const message = `there is no picture with key ${key} in the engine (it was removed)`;
    throw Object.assign(new Error(message), { kind: 'dataset', reason: message, file: null, setting: null });
  }
  return id;
}

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
 * A trap (panic = abort, out of memory) or a stack overflow means the instance is gone, unlike an
 * error the engine returns; so does a lost WebGPU device (the engine says `deviceLost`), which
 * fails every later call on it.
 */
function isCrash(error: unknown): boolean {
  return dead || error instanceof WebAssembly.RuntimeError || error instanceof RangeError || errorInfo(error)?.kind === 'deviceLost';
}

/** The engine's errors carry its `ErrorInfo` fields; anything else is not the engine's. */
function errorInfo(error: unknown): ErrorInfo | null {
  return error instanceof Error && 'kind' in error ? (error as unknown as ErrorInfo) : null;
}

/** An error as the page receives it: the engine's own fields, or an internal one. */
function asErrorInfo(error: unknown): ErrorInfo {
  const info = errorInfo(error);
  if (info) return { kind: info.kind, message: info.message, reason: info.reason, file: info.file, setting: info.setting };
  const message = messageOf(error);
  return { kind: 'internal', message, reason: message, file: null, setting: null };
}

function messageOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

function requireTrainer(): Trainer {
  if (!trainer) throw new Error('the training engine is not initialised');
  return trainer;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
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
  const { dataset, recommendation } = requireTrainer().overview() as Overview;
  return { ...dataset, recommendation };
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

async function start(backend: string, backbone: BackboneName, weights: WeightsSource, workers: number): Promise<ReplyData['init']> {
  if (trainer) throw new Error('the training engine is already initialised');
  const module = await compileEngine();
  ({ memory } = await init({ module_or_path: module }));
  initPanicHook();
  const bytes = await weightsBytes(weights);
  const importStart = performance.now();
  trainer = await Trainer.create(backbone, bytes, backend);
  const importMs = performance.now() - importStart;
  const info = trainer.info() as EngineFacts;
  // WebGPU does its own parallel work; the CPU engine gets a second core's worth of help.
  if (info.backend === 'cpu' && workers >= 2 && navigator.hardwareConcurrency >= 2) {
    const link = new HelperLink(module, simulate?.kind === 'helper-crash' ? 3 : null);
    trainer.setHelper((request: Uint8Array) => link.call(request));
    helper = link;
  }
  const note =
    backend === 'auto' && info.backend === 'cpu'
      ? 'WebGPU is not available in this browser, so training runs on the CPU (WebAssembly).'
      : null;
  return {
    backend: info.backend,
    backboneName: info.backbone as BackboneName,
    inputSize: info.inputSize,
    maxUnfreeze: info.maxUnfreeze,
    unitsDescription: info.unitsDescription,
    weightsBytes: bytes.byteLength,
    importMs,
    note,
    noteDetail: info.backendNote,
    workers: helper ? 2 : 1,
    summary: summary(),
  };
}

/**
 * The engine's module, compiled once: this worker instantiates it, and the helper worker is
 * given the same compiled module instead of compiling its ~30 MB again.
 */
async function compileEngine(): Promise<WebAssembly.Module> {
  const response = await fetch(wasmUrl);
  if (!response.ok) throw new Error(`could not download the engine (${wasmUrl}): HTTP ${response.status} ${response.statusText}`);
  // Streaming compilation needs the application/wasm type, which some static hosts do not send.
  if (response.headers.get('Content-Type')?.startsWith('application/wasm')) return WebAssembly.compileStreaming(response);
  return WebAssembly.compile(await response.arrayBuffer());
}

/**
 * The recipe, run by the engine: start it, then step until it says it finished, posting every
 * event. Stop ends it between two steps; the model trained so far stays.
 */
async function train(recipe: Recipe, post: (m: WorkerMessage, transfer?: Transferable[]) => void): Promise<ReplyData['train']> {
  const t = requireTrainer();
  stopRequested = false;
  paused = false;
  if (helper?.lost) {
    // It died in an earlier run: this engine trains alone from now on.
    t.setHelper(undefined);
    helper = null;
  }
  helper?.reset();
  const started = t.start(recipe) as Started;
  if (simulate?.kind === 'gpu-loss' && (t.info() as EngineFacts).backend === 'webgpu') {
    t.stop();
    throw Object.assign(new Error('the WebGPU device was lost (simulated: the page was opened with ?simulate=gpu-loss)'), {
      kind: 'deviceLost',
      reason: 'the WebGPU device was lost (simulated)',
      file: null,
      setting: null,
    });
  }
  const start = performance.now();
  // Time spent paused is left out of the run's times.
  let pausedMs = 0;
  /** The kept fine-tuning epoch (`bestEpoch`) of the last phase-2 checkpoint sent. */
  let lastFineCheckpoint: number | null = null;
  for (;;) {
    // A step on the CPU settles through microtasks only: without a turn of the event loop here,
    // Stop and Pause (messages) would not be read until the whole run had finished.
    await nextTask();
    if (paused && !stopRequested) {
      const since = performance.now();
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      pausedMs += performance.now() - since;
    }
    if (stopRequested) return { started, outcome: t.stop() as Outcome, helper: helper?.report() ?? null };
    const event = (await t.step(STEP_BUDGET)) as EngineEvent;
    if (event.type === 'finished') return { started, outcome: event.outcome, helper: helper?.report() ?? null };
    post({ kind: 'event', event: withPageKeys(event), elapsedMs: performance.now() - start - pausedMs, memoryBytes: memoryBytes() });
    if (event.type === 'epoch' && (event.report.done || event.phase === 'fine')) {
      // The model kept is the best epoch's: after an epoch that was not better it is the one
      // already sent (a 14 MB export and store saved per such epoch).
      const kept = event.phase === 'fine' ? event.report.bestEpoch : null;
      if (kept === null || kept !== lastFineCheckpoint) await checkpoint(t, event.phase, event.report.epoch, post);
      if (event.phase === 'fine') lastFineCheckpoint = kept;
      if (simulate?.kind === 'crash-in-training' && event.phase === 'fine') {
        throw new WebAssembly.RuntimeError('unreachable (simulated: the page was opened with ?simulate=crash-in-training)');
      }
    }
  }
}

/**
 * Sends the model as it is now (after phase 1, and after each fine-tuning epoch, the long ones)
 * for the page to keep. A model that cannot be exported costs only the checkpoint.
 */
async function checkpoint(t: Trainer, phase: Phase, epoch: number, post: (m: WorkerMessage, transfer?: Transferable[]) => void): Promise<void> {
  let bytes;
  try {
    bytes = ownBuffer(await t.exportSafetensors());
  } catch (error) {
    if (isCrash(error)) throw error;
    return;
  }
  post({ kind: 'checkpoint', bytes, phase, epoch }, [bytes.buffer]);
}

/** The engine's WebAssembly memory now (see `Reply`); 0 before the module is loaded. */
function memoryBytes(): number {
  return memory?.buffer.byteLength ?? 0;
}

/**
 * A channel to this worker itself, for `nextTask`: its messages queue behind those already
 * received, like a timer's turn, but without the 4 ms that browsers add to a timer set from a
 * timer (nesting level 5 on), which a run of hundreds of short steps would wait out each turn.
 */
const turns = new MessageChannel();
const turnWaiters: Array<() => void> = [];
turns.port1.onmessage = () => turnWaiters.shift()?.();

/** Resolves on the next turn of the event loop, after any message already received. */
function nextTask(): Promise<void> {
  return new Promise((resolve) => {
    turnWaiters.push(resolve);
    turns.port2.postMessage(null);
  });
}

function setPaused(value: boolean): void {
  paused = value;
  if (!value) {
    wake?.();
    wake = null;
  }
}

/** The engine names pictures by its image id; the page knows them by its key. */
function withPageKeys(event: Exclude<EngineEvent, { type: 'finished' }>): TrainingEvent {
  if (event.type !== 'evaluated') return event;
  const evaluation: Evaluation = {
    ...event.evaluation,
    misclassified: event.evaluation.misclassified.map(({ imageId, ...rest }) => ({ key: pageKeys.get(imageId) ?? null, ...rest })),
  };
  return { type: 'evaluated', evaluation };
}

/** Suspects and duplicates, pictures named by the page's key. */
async function checkLabels(limit: number): Promise<LabelCheck> {
  const t = requireTrainer();
  const report = (await t.suspects(limit)) as SuspectReport;
  const groups = (await t.duplicates()) as DuplicateGroup[];
  const keyed = <T extends { imageId: number }>({ imageId, ...rest }: T) => ({ ...rest, key: pageKeys.get(imageId) ?? null });
  return {
    suspects: report.suspects.map(keyed),
    checked: report.checked,
    folds: report.folds,
    duplicates: groups.map((group) => ({ ...group, pictures: group.pictures.map(keyed) })),
  };
}

async function dispatch(request: Request): Promise<{ data: ReplyData[RequestType]; transfer?: Transferable[] }> {
  switch (request.type) {
    case 'init':
      simulate = request.simulate;
      return { data: await start(request.backend, request.backbone, request.weights, request.workers) };
    case 'addClass':
      requireTrainer().addClass(request.label);
      return { data: { summary: summary() } };
    case 'addImage': {
      if (simulate?.kind === 'crash-on-file' && request.fileName === simulate.fileName) {
        throw new WebAssembly.RuntimeError('unreachable (simulated: the page was opened with ?simulate=crash-on-file)');
      }
      const t = requireTrainer();
      if (request.file.size > MAX_FILE_BYTES) {
        // Not read: a few GB would not even fit, and the engine's memory never shrinks.
        throw new Error(`file too large (${Math.round(request.file.size / 2 ** 20)} MB; at most ${MAX_FILE_BYTES >> 20} MB)`);
      }
      const bytes = await bytesOf(request.file);
      const id = request.compact
        ? t.addCompactImage(request.label, request.fileName, bytes)
        : t.addImage(request.label, request.fileName, bytes);
      pageKeys.set(id, request.key);
      engineIds.set(request.key, id);
      // A page that gave a compact copy keeps it (no Blob for each re-added picture), unless the
      // engine could not take it as it was (another size, a project file's wrong flag).
      const kept = t.compactImage(id) as Uint8Array<ArrayBuffer>;
      const compact = request.compact && sameBytes(kept, bytes) ? null : new Blob([kept], { type: 'image/jpeg' });
      return { data: { summary: summary(), compact } };
    }
    case 'removeClass':
      requireTrainer().removeClass(request.label);
      return { data: { summary: summary() } };
    case 'renameClass': {
      const label = requireTrainer().renameClass(request.from, request.to);
      return { data: { summary: summary(), label } };
    }
    case 'mergeClasses':
      requireTrainer().mergeClasses(request.from, request.into);
      return { data: { summary: summary() } };
    case 'movePicture':
      requireTrainer().movePicture(engineId(request.key), request.label);
      return { data: { summary: summary() } };
    case 'removePicture': {
      const id = engineId(request.key);
      requireTrainer().removePicture(id);
      engineIds.delete(request.key);
      pageKeys.delete(id);
      return { data: { summary: summary() } };
    }
    case 'train':
      return { data: await train(request.recipe, (m, transfer) => scope.postMessage(m, transfer)) };
    case 'stopTraining':
      stopRequested = true;
      wake?.();
      wake = null;
      return { data: {} };
    case 'pauseTraining':
      setPaused(request.paused);
      return { data: {} };
    case 'export': {
      const t = requireTrainer();
      const bytes = ownBuffer(await (request.format === 'onnx' ? t.exportOnnx() : t.exportSafetensors()));
      return { data: { bytes }, transfer: [bytes.buffer] };
    }
    case 'loadModel': {
      const labels = requireTrainer().loadModel(await bytesOf(request.file)) as string[];
      return { data: { labels } };
    }
    case 'predict': {
      const bytes = await bytesOf(request.file);
      const predictions = (await requireTrainer().predict(request.fileName, bytes)) as Prediction[];
      return { data: { predictions } };
    }
    case 'gradCam': {
      const bytes = await bytesOf(request.file);
      const cam = (await requireTrainer().gradCam(request.fileName, bytes, request.classIndex ?? undefined)) as HeatmapData;
      return { data: { cam }, transfer: [cam.overlay.buffer] };
    }
    case 'checkLabels':
      return { data: await checkLabels(request.limit) };
    case 'augmentedViews': {
      const t = requireTrainer();
      const bytes = await bytesOf(request.file);
      const pixels = t.augmentedViews(request.fileName, bytes, request.augmentation, request.count, request.seed);
      return { data: { pixels, size: (t.info() as EngineFacts).inputSize }, transfer: [pixels.buffer] };
    }
  }
}

async function handle({ id, request }: Envelope): Promise<void> {
  if (dead) return;
  try {
    const { data, transfer } = await dispatch(request);
    if (!dead) scope.postMessage({ kind: 'reply', id, ok: true, data, memoryBytes: memoryBytes() }, transfer);
  } catch (error) {
    if (isCrash(error)) {
      crash(messageOf(error));
    } else {
      scope.postMessage({ kind: 'reply', id, ok: false, error: asErrorInfo(error), memoryBytes: memoryBytes() });
    }
  }
}

scope.addEventListener('message', (event) => {
  const envelope = event.data;
  if (envelope.request.type === 'stopTraining' || envelope.request.type === 'pauseTraining') {
    void handle(envelope);
    return;
  }
  queue = queue.then(() => handle(envelope));
});
