// The page's side of the worker protocol: one worker, typed calls that resolve with the reply,
// progress events forwarded to a listener, and crash detection (a trap reported by the worker,
// or the worker's own error event). A crashed client rejects everything still waiting and is
// done, saying which backend it ran on (a crash on WebGPU is taken as the GPU giving up); the app
// starts a new one.

import type {
  Backend,
  Checkpoint,
  BackendChoice,
  BackboneName,
  EngineInfo,
  Envelope,
  ErrorInfo,
  ReplyData,
  RequestOf,
  RequestType,
  Simulation,
  WeightsSource,
  WorkerEvent,
  WorkerMessage,
} from './protocol';

/** An error the engine returned: the page acts on `info.kind`, never on the message's words. */
export class EngineError extends Error {
  constructor(readonly info: ErrorInfo) {
    super(info.message);
    this.name = 'EngineError';
  }
}

/** Rejection of calls that were waiting when the engine crashed or was shut down. */
export class EngineGone extends Error {
  constructor(
    message: string,
    readonly crashed: boolean,
    /** The backend the engine ran on; null when it died before it was initialised. */
    readonly backend: Backend | null,
  ) {
    super(message);
    this.name = 'EngineGone';
  }
}

interface Waiting {
  resolve: (data: never) => void;
  reject: (error: Error) => void;
}

export interface EngineListeners {
  onEvent(event: WorkerEvent): void;
  /** The model so far, sent during training (see `Checkpoint`). */
  onCheckpoint?(checkpoint: Checkpoint): void;
  /** The wasm instance died; `message` is the panic message when there was one. */
  onCrash(message: string, backend: Backend | null): void;
  /**
   * The engine's WebAssembly memory (see `Reply`) grew by a step (`MEMORY_STEP`) since the last
   * call, or this is the first reply: a listener that renders it is not woken for every page.
   */
  onMemory?(bytes: number): void;
}

/** How much the engine's memory grows before `onMemory` hears of it again. */
export const MEMORY_STEP = 16 * 1024 * 1024;

export class TrainerClient {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  private gone: EngineGone | null = null;
  private backend: Backend | null = null;
  private reportedMemory = -MEMORY_STEP;
  private lastMemory: number | null = null;

  constructor(private readonly listeners: EngineListeners) {
    this.worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'webtune-trainer' });
    this.worker.addEventListener('message', (event: MessageEvent<WorkerMessage>) => this.receive(event.data));
    this.worker.addEventListener('error', (event) => {
      event.preventDefault();
      this.fail(event.message || 'the worker failed to load or threw an uncaught error', true);
    });
    this.worker.addEventListener('messageerror', () => this.fail('a worker message could not be read', true));
  }

  /** Loads the wasm module and the backbone; call once, first. */
  async init(
    backend: BackendChoice,
    backbone: BackboneName,
    weights: WeightsSource,
    simulate: Simulation | null = null,
    /** At most this many workers train on the CPU: 2 gives the engine a helper on a second core. */
    workers = 2,
  ): Promise<EngineInfo> {
    const info = await this.call({ type: 'init', backend, backbone, weights, simulate, workers });
    this.backend = info.backend;
    return info;
  }

  /** The engine's WebAssembly memory at its latest reply or event (see `Reply`); null before any. */
  get memoryBytes(): number | null {
    return this.lastMemory;
  }

  call<T extends RequestType>(request: RequestOf<T>): Promise<ReplyData[T]> {
    if (this.gone) return Promise.reject(this.gone);
    const id = this.nextId++;
    return new Promise<ReplyData[T]>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (data: never) => void, reject });
      const envelope: Envelope = { id, request };
      this.worker.postMessage(envelope);
    });
  }

  /** Ends the worker; calls still waiting reject with a non-crash EngineGone. */
  shutdown(): void {
    this.fail('the training engine was restarted', false);
  }

  private receive(message: WorkerMessage): void {
    const memory = message.kind === 'reply' || message.kind === 'event' ? message.memoryBytes : 0;
    if (memory > 0) {
      this.lastMemory = memory;
      if (memory >= this.reportedMemory + MEMORY_STEP) {
        this.reportedMemory = memory;
        this.listeners.onMemory?.(memory);
      }
    }
    switch (message.kind) {
      case 'reply': {
        const waiting = this.waiting.get(message.id);
        if (!waiting) return;
        this.waiting.delete(message.id);
        if (message.ok) waiting.resolve(message.data as never);
        else waiting.reject(new EngineError(message.error));
        return;
      }
      case 'event':
        this.listeners.onEvent(message);
        return;
      case 'checkpoint':
        this.listeners.onCheckpoint?.(message);
        return;
      case 'crashed':
        this.fail(message.message, true);
        return;
    }
  }

  private fail(message: string, crashed: boolean): void {
    if (this.gone) return;
    this.gone = new EngineGone(message, crashed, this.backend);
    this.worker.terminate();
    for (const waiting of this.waiting.values()) waiting.reject(this.gone);
    this.waiting.clear();
    if (crashed) this.listeners.onCrash(message, this.backend);
  }
}
