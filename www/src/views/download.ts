// Saving the trained classifier: bytes from the worker become a file download, one button per
// format.

import type { ExportFormat } from '../engine/protocol';
import type { AppState, ModelInfo } from '../app/state';

/** What each format's button says, and what its hint adds after the file's contents. */
const FORMATS: Record<ExportFormat, { label: string; use: (inputSize: number) => string }> = {
  safetensors: {
    label: 'Download model (.safetensors)',
    use: () => ', with the labels and the training settings in its metadata.',
  },
  onnx: {
    label: 'Download ONNX',
    use: (size) =>
      ` as one graph for onnxruntime or onnxruntime-web. Input "input": [batch, 3, ${size}, ${size}] RGB, normalised as its ` +
      '"normalization" metadata says; outputs "logits" and "probabilities": [batch, classes], in the order of its "labels" metadata.',
  },
};

/** `webtune-<backbone>-<n>classes.<format>`: every format under the same name but the extension. */
export function exportFileName(trained: ModelInfo, format: ExportFormat): string {
  return `webtune-${trained.backboneName}-${trained.classCount}classes.${format}`;
}

/** Saves `bytes` as a file named `fileName` through a temporary object URL. */
export function saveBytes(bytes: Uint8Array<ArrayBuffer>, fileName: string): void {
  const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // The download has started from the URL by now; give slow browsers a moment anyway.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** One download button and its hint for `format`; one export runs at a time, whatever its format. */
export function mountDownload(
  format: ExportFormat,
  button: HTMLButtonElement,
  hint: HTMLElement,
  exportModel: (format: ExportFormat) => Promise<{ bytes: Uint8Array<ArrayBuffer>; fileName: string } | null>,
) {
  const { label, use } = FORMATS[format];
  button.addEventListener('click', async () => {
    const model = await exportModel(format);
    if (model) saveBytes(model.bytes, model.fileName);
  });

  return function render(state: AppState): void {
    const { trained } = state;
    button.disabled = !trained || state.exporting !== null;
    button.textContent = state.exporting === format ? 'Preparing the file…' : label;
    const contents =
      trained && trained.fineTuned > 0
        ? `the backbone with its last ${trained.fineTuned === 1 ? 'block' : `${trained.fineTuned} blocks`} fine-tuned and the trained head`
        : 'the backbone and the trained head';
    hint.textContent = trained ? `${exportFileName(trained, format)}: ${contents}${use(state.engine.inputSize ?? 0)}` : format === 'safetensors' ? 'Train a model first.' : '';
  };
}
