// The benchmark's worker, so the bench page stays responsive. Two modes: `steps` loads the
// engine on the asked backend and times phase-2 steps with `timeFineTuneSteps`, one
// configuration at a time; `backbones` builds each backbone from its weights file in turn and
// times the import (`Trainer.create`) and a forward pass (`timeForward`). The side-by-side mode
// sends `SideBySideRequest`s instead, one at a time, each answered by one `SideBySideReply`:
// webtune's CPU path through the bench-only `BenchBackbone` (src/bench_web.rs).

import init, { BenchBackbone, Trainer, initPanicHook, simdPeakGflops, timeConvShapes } from '../../pkg/webtune.js';
import wasmUrl from '../../pkg/webtune_bg.wasm?url';
import type { BackboneName } from '../engine/protocol';

export type BenchConfig =
  | { mode: 'steps'; backend: 'cpu' | 'webgpu'; weightsUrl: string; unfreeze: number[]; batch: number; steps: number }
  /** Each backbone's weights are fetched from `<weightsBase><backbone>.safetensors`. */
  | { mode: 'backbones'; backend: 'cpu' | 'webgpu'; weightsBase: string; backbones: BackboneName[]; batch: number; steps: number };

/** What `timeFineTuneSteps` resolves to. */
export interface StepTiming {
  unfreeze: number;
  cached: boolean;
  batch: number;
  steps: number;
  medianMs: number;
  imagesPerSecond: number;
}

/** One backbone built from its file and run forward at its input size on random data. */
export interface BackboneTiming {
  backend: string;
  backbone: BackboneName;
  fileBytes: number;
  /** `backboneParameters()`: BatchNorm running statistics included, as burn counts them. */
  parameters: number;
  /** `Trainer.create` on bytes already in memory: parsing, name mapping, building the model. */
  importMs: number;
  batch: number;
  steps: number;
  /** Median of `steps` forwards after a warm-up, features read back. */
  forwardMs: number;
}

export type SideBySideRequest =
  | { op: 'load'; backbone: BackboneName; weightsUrl: string }
  /** Median ms of `steps` forwards at 224 px (after a warm-up), BatchNorm folded or not. */
  | { op: 'forward'; backbone: BackboneName; batch: number; steps: number; folded: boolean }
  /** Median ms of `steps` phase-2 steps from the cached prefix (after a warm-up step). */
  | { op: 'phase2'; backbone: BackboneName; unfreeze: number; batch: number; steps: number }
  /** This thread's simd128 peak, and EfficientNet-Lite0's main convolution shapes timed. */
  | { op: 'kernels'; batch: number; steps: number };

/** One convolution shape timed by `timeConvShapes` (src/train/kernel_timing.rs). */
export interface ConvTiming {
  name: string;
  /** `backbone`: as the backbones run it (webtune's kernels for depthwise convolutions, the stem and pointwise convolutions over few inputs); `burn`: burn-flex's. */
  kernel: 'backbone' | 'burn';
  batch: number;
  medianMs: number;
  gflops: number;
}

export type SideBySideReply =
  | { ok: true; loadMs: number; foldMs: number }
  | { ok: true; medianMs: number }
  | { ok: true; peakGflops: number; shapes: ConvTiming[] }
  | { ok: false; error: string };

export type BenchMessage =
  | { kind: 'ready'; backend: string }
  | { kind: 'result'; result: StepTiming & { backend: string } }
  | { kind: 'backbone'; result: BackboneTiming }
  | { kind: 'done' }
  | { kind: 'error'; message: string };

const post = (message: BenchMessage) => self.postMessage(message);

async function download(url: string): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`could not download the backbone weights (${url}): HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function timeSteps(config: Extract<BenchConfig, { mode: 'steps' }>): Promise<void> {
  const trainer = await Trainer.create('efficientnet_lite0', await download(config.weightsUrl), config.backend);
  const backend = (trainer.info() as { backend: string }).backend;
  post({ kind: 'ready', backend });
  for (const unfreeze of config.unfreeze) {
    for (const cached of [true, false]) {
      const result = (await trainer.timeFineTuneSteps(unfreeze, cached, config.batch, config.steps)) as StepTiming;
      post({ kind: 'result', result: { ...result, backend } });
    }
  }
}

async function timeBackbones(config: Extract<BenchConfig, { mode: 'backbones' }>): Promise<void> {
  for (const backbone of config.backbones) {
    const bytes = await download(`${config.weightsBase}${backbone}.safetensors`);
    const start = performance.now();
    const trainer = await Trainer.create(backbone, bytes, config.backend);
    const importMs = performance.now() - start;
    try {
      const forwardMs = await trainer.timeForward(config.batch, config.steps);
      post({
        kind: 'backbone',
        result: {
          backend: (trainer.info() as { backend: string }).backend,
          backbone,
          fileBytes: bytes.byteLength,
          parameters: trainer.backboneParameters(),
          importMs,
          batch: config.batch,
          steps: config.steps,
          forwardMs,
        },
      });
    } finally {
      // ResNet-50 after three others: give each model's memory back before the next.
      trainer.free();
    }
  }
}

const sideBySide = new Map<BackboneName, BenchBackbone>();
let engine: Promise<void> | undefined;

async function answer(request: SideBySideRequest): Promise<SideBySideReply> {
  await (engine ??= init({ module_or_path: wasmUrl }).then(() => initPanicHook()));
  const loaded = (name: BackboneName) => {
    const backbone = sideBySide.get(name);
    if (!backbone) throw new Error(`${name} is not loaded`);
    return backbone;
  };
  switch (request.op) {
    case 'load': {
      const bytes = await download(request.weightsUrl);
      const start = performance.now();
      const backbone = BenchBackbone.create(request.backbone, bytes);
      sideBySide.get(request.backbone)?.free();
      sideBySide.set(request.backbone, backbone);
      return { ok: true, loadMs: performance.now() - start, foldMs: backbone.foldMs() };
    }
    case 'forward':
      return { ok: true, medianMs: await loaded(request.backbone).timeForward(request.batch, request.steps, request.folded) };
    case 'phase2':
      return { ok: true, medianMs: await loaded(request.backbone).timeFineTuneSteps(request.unfreeze, request.batch, request.steps) };
    case 'kernels':
      // 50 million iterations: about a second, long against the clock's resolution.
      return { ok: true, peakGflops: simdPeakGflops(50_000_000, 3), shapes: (await timeConvShapes(request.batch, request.steps)) as ConvTiming[] };
  }
}

self.addEventListener('message', (event: MessageEvent<BenchConfig | SideBySideRequest>) => {
  if ('op' in event.data) {
    answer(event.data).then(
      (reply) => self.postMessage(reply),
      (error: unknown) => self.postMessage({ ok: false, error: error instanceof Error ? error.message : String(error) } satisfies SideBySideReply),
    );
    return;
  }
  const config = event.data;
  const run = async () => {
    await init({ module_or_path: wasmUrl });
    initPanicHook();
    await (config.mode === 'backbones' ? timeBackbones(config) : timeSteps(config));
    post({ kind: 'done' });
  };
  run().catch((error: unknown) => post({ kind: 'error', message: error instanceof Error ? error.message : String(error) }));
});
