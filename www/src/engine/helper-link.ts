// The training worker's side of its helper worker (helper-worker.ts): starts it with the
// compiled engine module and hands it the engine's requests (`Trainer.setHelper`'s function).
// A helper that fails or dies rejects what it was asked; the engine then goes on alone.

/** What the training worker sends its helper. */
export type HelperRequest =
  | { kind: 'init'; module: WebAssembly.Module }
  | { kind: 'request'; id: number; request: Uint8Array<ArrayBuffer> };

/** What the helper answers a request with. */
export type HelperReply =
  | { kind: 'reply'; id: number; ok: true; reply: Uint8Array<ArrayBuffer> }
  | { kind: 'reply'; id: number; ok: false; message: string };

interface Waiting {
  resolve: (reply: Uint8Array) => void;
  reject: (error: Error) => void;
}

/** How much of a run the helper did, and why it stopped helping, if it did. */
export interface HelperReport {
  /** Requests it answered. */
  answered: number;
  lost: string | null;
}

export class HelperLink {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  private lostBecause: string | null = null;
  private answered = 0;

  /** `failAfter`: answers after which the helper is ended as if it had crashed (a simulation). */
  constructor(
    module: WebAssembly.Module,
    private readonly failAfter: number | null = null,
  ) {
    this.worker = new Worker(new URL('./helper-worker.ts', import.meta.url), { type: 'module', name: 'webtune-helper' });
    this.worker.addEventListener('message', (event: MessageEvent<HelperReply>) => this.receive(event.data));
    this.worker.addEventListener('error', (event) => {
      event.preventDefault();
      this.lose(event.message || 'the helper worker failed to load or threw an uncaught error');
    });
    this.worker.addEventListener('messageerror', () => this.lose('a helper message could not be read'));
    const init: HelperRequest = { kind: 'init', module };
    this.worker.postMessage(init);
  }

  /** Posts `request` at once; resolves with the helper's reply. */
  call(request: Uint8Array): Promise<Uint8Array> {
    if (this.lostBecause) return Promise.reject(new Error(this.lostBecause));
    const id = this.nextId++;
    const owned = request as Uint8Array<ArrayBuffer>;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      const message: HelperRequest = { kind: 'request', id, request: owned };
      this.worker.postMessage(message, [owned.buffer]);
    });
  }

  /** Counts from now on (a run's report starts at zero). */
  reset(): void {
    this.answered = 0;
  }

  report(): HelperReport {
    return { answered: this.answered, lost: this.lostBecause };
  }

  get lost(): boolean {
    return this.lostBecause !== null;
  }

  private receive(message: HelperReply): void {
    const waiting = this.waiting.get(message.id);
    if (!waiting) return;
    this.waiting.delete(message.id);
    if (!message.ok) {
      waiting.reject(new Error(message.message));
      return;
    }
    this.answered++;
    waiting.resolve(message.reply);
    if (this.failAfter !== null && this.answered >= this.failAfter) {
      this.lose('the helper worker crashed (simulated: the page was opened with ?simulate=helper-crash)');
    }
  }

  /** Ends the helper: whatever waits is rejected, and so is everything asked later. */
  lose(reason: string): void {
    if (this.lostBecause) return;
    this.lostBecause = reason;
    this.worker.terminate();
    for (const waiting of this.waiting.values()) waiting.reject(new Error(reason));
    this.waiting.clear();
  }
}
