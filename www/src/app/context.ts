// What the app's parts (pictures, training, backbone choice) share: the one store, and the
// engine to call. The App provides it; the parts never see the worker itself.

import type { ReplyData, Request, RequestType } from '../engine/protocol';
import { EngineError, EngineGone } from '../engine/trainer-client';
import type { AppState, Store } from './state';

export interface AppContext {
  readonly store: Store;
  readonly state: AppState;
  /** Waits for the engine and sends one request to it. */
  call<T extends RequestType>(request: Extract<Request, { type: T }>): Promise<ReplyData[T]>;
  /** Asks the running engine to stop training (its reply comes with the `train` request's). */
  stop(): void;
  reportError(text: string): void;
}

/** The engine failed to start; calls wait for the user to pick another backend. */
export class EngineUnavailable extends Error {
  constructor() {
    super('the training engine is not running');
  }
}

/** Whether `error` ended a call because the engine crashed on WebGPU (the App restarts it on the CPU). */
export function gpuGaveUp(error: unknown): boolean {
  return error instanceof EngineGone && error.crashed && error.backend === 'webgpu';
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The engine names the file beside its reason; the page shows the path, so just the reason. */
export function reasonOf(error: unknown): string {
  return error instanceof EngineError ? error.info.reason : messageOf(error);
}
