// Saving the trained classifier: bytes from the worker become a file download.

import type { AppState } from './state';

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

export function mountDownload(
  button: HTMLButtonElement,
  hint: HTMLElement,
  exportModel: () => Promise<{ bytes: Uint8Array<ArrayBuffer>; fileName: string } | null>,
) {
  button.addEventListener('click', async () => {
    const model = await exportModel();
    if (model) saveBytes(model.bytes, model.fileName);
  });

  return function render(state: AppState): void {
    const { trained } = state;
    button.disabled = !trained || state.exporting;
    button.textContent = state.exporting ? 'Preparing the file…' : 'Download model (.safetensors)';
    const contents =
      trained && trained.fineTuned > 0
        ? `the backbone with its last ${trained.fineTuned === 1 ? 'block' : `${trained.fineTuned} blocks`} fine-tuned and the trained head`
        : 'the backbone and the trained head';
    hint.textContent = trained
      ? `webtune-${trained.backboneName}-${trained.classCount}classes.safetensors: ${contents}, with the labels and the training settings in its metadata.`
      : 'Train a model first.';
  };
}
