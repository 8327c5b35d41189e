// The helper worker: a second engine, on another core, that computes the gradients of half of
// every phase-2 batch of the training worker's engine (src/train/data_parallel.rs). Only the
// training worker talks to it (helper-link.ts): it sends the compiled module once, then the
// engine's requests, which run one at a time.

import init, { Replica, initPanicHook } from '../../pkg/webtune.js';
import type { HelperReply, HelperRequest } from './helper-link';

interface HelperScope {
  postMessage(message: HelperReply, transfer?: Transferable[]): void;
  addEventListener(type: 'message', listener: (event: MessageEvent<HelperRequest>) => void): void;
}
const scope = self as unknown as HelperScope;

let replica: Promise<Replica> | null = null;
let queue: Promise<void> = Promise.resolve();

async function answer(id: number, request: Uint8Array, engine: Promise<Replica>): Promise<void> {
  try {
    const reply = (await (await engine).handle(request)) as Uint8Array<ArrayBuffer>;
    scope.postMessage({ kind: 'reply', id, ok: true, reply }, [reply.buffer]);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    scope.postMessage({ kind: 'reply', id, ok: false, message });
  }
}

scope.addEventListener('message', ({ data }) => {
  if (data.kind === 'init') {
    replica = init({ module_or_path: data.module }).then(() => {
      initPanicHook();
      return new Replica();
    });
    return;
  }
  const engine = replica ?? Promise.reject(new Error('the helper was not given its module'));
  queue = queue.then(() => answer(data.id, data.request, engine));
});
