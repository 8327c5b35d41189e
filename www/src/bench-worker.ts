// The benchmark's worker: loads the engine on the asked backend and times phase-2 steps with
// `timeFineTuneSteps`, one configuration at a time, so the bench page stays responsive.

import init, { Trainer, initPanicHook } from '../pkg/webtune.js';
import wasmUrl from '../pkg/webtune_bg.wasm?url';

export interface BenchConfig {
  backend: 'cpu' | 'webgpu';
  weightsUrl: string;
  unfreeze: number[];
  batch: number;
  steps: number;
}

/** What `timeFineTuneSteps` resolves to. */
export interface StepTiming {
  unfreeze: number;
  cached: boolean;
  batch: number;
  steps: number;
  medianMs: number;
  imagesPerSecond: number;
}

export type BenchMessage =
  | { kind: 'ready'; backend: string }
  | { kind: 'result'; result: StepTiming & { backend: string } }
  | { kind: 'done' }
  | { kind: 'error'; message: string };

const post = (message: BenchMessage) => self.postMessage(message);

async function run(config: BenchConfig): Promise<void> {
  await init({ module_or_path: wasmUrl });
  initPanicHook();
  const response = await fetch(config.weightsUrl);
  if (!response.ok) throw new Error(`could not download the backbone weights: HTTP ${response.status}`);
  const trainer = await Trainer.create('efficientnet_lite0', new Uint8Array(await response.arrayBuffer()), config.backend);
  const backend = trainer.backend();
  post({ kind: 'ready', backend });
  for (const unfreeze of config.unfreeze) {
    for (const cached of [true, false]) {
      const result = (await trainer.timeFineTuneSteps(unfreeze, cached, config.batch, config.steps)) as StepTiming;
      post({ kind: 'result', result: { ...result, backend } });
    }
  }
  post({ kind: 'done' });
}

self.addEventListener('message', (event: MessageEvent<BenchConfig>) => {
  run(event.data).catch((error: unknown) => post({ kind: 'error', message: error instanceof Error ? error.message : String(error) }));
});
