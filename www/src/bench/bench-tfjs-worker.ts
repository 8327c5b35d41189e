// The TF.js side of the bench page's side-by-side mode: MobileNetV2 (α = 1.0) built from
// tf.layers with random weights (nothing is downloaded), timed on one TF.js backend per worker
// (the wasm backend's thread count is fixed when it starts). The first request is `init`;
// then `forward` (the pooled features of a 224 px batch, read back) and `phase2` (a training
// step of the last units on a cached prefix, read-back of the loss) answer with every step's
// milliseconds after one warm-up. TF.js 4.22 is a devDependency used only by this page.

import * as tf from '@tensorflow/tfjs';
import { getThreadsCount, setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import '@tensorflow/tfjs-backend-webgpu';

export type TfjsBackend = 'wasm' | 'webgl' | 'webgpu' | 'cpu';

export type TfjsRequest =
  /** `wasmPaths`: the folder (URL, same origin) holding tfjs-backend-wasm's .wasm files. */
  | { op: 'init'; backend: TfjsBackend; threads: number; wasmPaths: string }
  | { op: 'forward'; batch: number; steps: number }
  /** `unfreeze` counts units from the end as webtune does: the final 1×1 convolution is one. */
  | { op: 'phase2'; unfreeze: number; batch: number; steps: number };

export type TfjsReply =
  | { ok: true; backend: string; threads: number | null; info: string }
  | { ok: true; times: number[] }
  | { ok: false; error: string };

// MobileNetV2's stages: expansion t, output channels c, repeats n, first stride s.
const STAGES: [number, number, number, number][] = [
  [1, 16, 1, 1],
  [6, 24, 2, 2],
  [6, 32, 3, 2],
  [6, 64, 4, 2],
  [6, 96, 3, 1],
  [6, 160, 3, 2],
  [6, 320, 1, 1],
];
const SIZE = 224;
const FEATURES = 1280;

interface Block {
  inChannels: number;
  outChannels: number;
  stride: number;
  expand: number;
  /** Side of the block's input. */
  inSize: number;
}

const BLOCKS: Block[] = (() => {
  const blocks: Block[] = [];
  let [channels, size] = [32, SIZE / 2];
  for (const [t, c, n, s] of STAGES) {
    for (let i = 0; i < n; i++) {
      const stride = i === 0 ? s : 1;
      blocks.push({ inChannels: channels, outChannels: c, stride, expand: t, inSize: size });
      [channels, size] = [c, size / stride];
    }
  }
  return blocks;
})();

const batchNorm = () => tf.layers.batchNormalization({ epsilon: 1e-3, momentum: 0.999 });
const relu6 = () => tf.layers.reLU({ maxValue: 6 });

function convBn(x: tf.SymbolicTensor, filters: number, kernel: number, stride: number, activation: boolean): tf.SymbolicTensor {
  let y = tf.layers.conv2d({ filters, kernelSize: kernel, strides: stride, padding: 'same', useBias: false }).apply(x) as tf.SymbolicTensor;
  y = batchNorm().apply(y) as tf.SymbolicTensor;
  return activation ? (relu6().apply(y) as tf.SymbolicTensor) : y;
}

function invertedResidual(x: tf.SymbolicTensor, block: Block): tf.SymbolicTensor {
  let y = block.expand === 1 ? x : convBn(x, block.inChannels * block.expand, 1, 1, true);
  y = tf.layers.depthwiseConv2d({ kernelSize: 3, strides: block.stride, padding: 'same', useBias: false }).apply(y) as tf.SymbolicTensor;
  y = relu6().apply(batchNorm().apply(y)) as tf.SymbolicTensor;
  y = convBn(y, block.outChannels, 1, 1, false); // linear bottleneck
  return block.stride === 1 && block.inChannels === block.outChannels ? (tf.layers.add().apply([x, y]) as tf.SymbolicTensor) : y;
}

/** The blocks from `first` on, the final 1×1 convolution and global average pooling. */
function tail(x: tf.SymbolicTensor, first: number): tf.SymbolicTensor {
  for (const block of BLOCKS.slice(first)) x = invertedResidual(x, block);
  return tf.layers.globalAveragePooling2d({}).apply(convBn(x, FEATURES, 1, 1, true)) as tf.SymbolicTensor;
}

/** The whole backbone: 224×224×3 → 1280 pooled features (what webtune's forward returns). */
function mobilenetV2(): tf.LayersModel {
  const input = tf.input({ shape: [SIZE, SIZE, 3] });
  return tf.model({ inputs: input, outputs: tail(convBn(input, 32, 3, 2, true), 0) });
}

/** The last `unfreeze` units (the final convolution counts as one) and a 2-class linear head,
 * fed the cached output of the frozen prefix. */
function fineTuneTail(unfreeze: number): tf.LayersModel {
  const first = BLOCKS.length - (unfreeze - 1);
  const block = BLOCKS[first] ?? { inSize: 7, inChannels: 320 };
  const input = tf.input({ shape: [block.inSize, block.inSize, block.inChannels] });
  const logits = tf.layers.dense({ units: 2 }).apply(tail(input, first)) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits });
}

async function timeSteps(steps: number, step: () => Promise<void>): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i <= steps; i++) {
    const start = performance.now();
    await step();
    if (i > 0) times.push(performance.now() - start);
  }
  return times;
}

let model: tf.LayersModel | undefined;

async function forward(batch: number, steps: number): Promise<number[]> {
  model ??= mobilenetV2();
  const input = tf.randomNormal([batch, SIZE, SIZE, 3]);
  try {
    return await timeSteps(steps, async () => {
      const features = model!.predict(input) as tf.Tensor;
      await features.data();
      features.dispose();
    });
  } finally {
    input.dispose();
  }
}

async function phase2(unfreeze: number, batch: number, steps: number): Promise<number[]> {
  const tailModel = fineTuneTail(unfreeze);
  const shape = tailModel.inputs[0]!.shape.slice(1) as number[];
  // The prefix cache lives on the host and is uploaded for every batch, as in webtune.
  const prefix = tf.tidy(() => tf.randomNormal([batch, ...shape]).dataSync());
  const labels = tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 2), 'int32'), 2);
  const optimizer = tf.train.adam(1e-4);
  try {
    return await timeSteps(steps, async () => {
      const x = tf.tensor4d(prefix, [batch, shape[0]!, shape[1]!, shape[2]!]);
      // training: false keeps BatchNorm on its moving statistics (webtune's phase 2 does the
      // same); gradients still reach every trainable weight of the tail.
      const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(labels, tailModel.apply(x, { training: false }) as tf.Tensor, undefined, 0.1) as tf.Scalar, true)!;
      await loss.data();
      loss.dispose();
      x.dispose();
    });
  } finally {
    labels.dispose();
    optimizer.dispose();
    tailModel.dispose();
  }
}

async function init(request: Extract<TfjsRequest, { op: 'init' }>): Promise<TfjsReply> {
  if (request.backend === 'wasm') {
    setWasmPaths(request.wasmPaths);
    setThreadsCount(request.threads);
  }
  if (!(await tf.setBackend(request.backend))) throw new Error(`TF.js could not start its ${request.backend} backend`);
  await tf.ready();
  const threads = request.backend === 'wasm' ? getThreadsCount() : null;
  let info = `tfjs ${tf.version.tfjs}`;
  if (request.backend === 'wasm') {
    // The threaded build needs SharedArrayBuffer, i.e. a cross-origin isolated worker.
    info += `, crossOriginIsolated ${self.crossOriginIsolated}, multithread ${await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')}, simd ${await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')}`;
  }
  if (request.backend === 'webgl') info += `, WEBGL_VERSION ${tf.env().getNumber('WEBGL_VERSION')}`;
  if (request.backend === 'webgpu') {
    const adapter = await (navigator as Navigator & { gpu?: { requestAdapter(): Promise<{ info?: { vendor: string; architecture: string } } | null> } }).gpu?.requestAdapter();
    info += `, adapter ${adapter?.info?.vendor ?? '?'} ${adapter?.info?.architecture ?? ''}`.trimEnd();
  }
  return { ok: true, backend: tf.getBackend(), threads, info };
}

async function handle(request: TfjsRequest): Promise<TfjsReply> {
  switch (request.op) {
    case 'init':
      return init(request);
    case 'forward':
      return { ok: true, times: await forward(request.batch, request.steps) };
    case 'phase2':
      return { ok: true, times: await phase2(request.unfreeze, request.batch, request.steps) };
  }
}

self.addEventListener('message', (event: MessageEvent<TfjsRequest>) => {
  handle(event.data).then(
    (reply) => self.postMessage(reply),
    (error: unknown) => self.postMessage({ ok: false, error: error instanceof Error ? error.message : String(error) } satisfies TfjsReply),
  );
});
