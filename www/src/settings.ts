// The training settings form and the backend selector.

import { DEFAULT_SETTINGS, type BackendChoice, type TrainSettings } from './protocol';
import { isTraining, type AppState } from './state';

export interface SettingsElements {
  form: HTMLFormElement;
  epochs: HTMLInputElement;
  learningRate: HTMLInputElement;
  batchSize: HTMLInputElement;
  hiddenUnits: HTMLInputElement;
  dropout: HTMLInputElement;
  validationPercent: HTMLInputElement;
  seed: HTMLInputElement;
  backend: HTMLSelectElement;
  backendLabel: HTMLElement;
  backendNote: HTMLElement;
  backendDetails: HTMLDetailsElement;
  backendDetail: HTMLElement;
}

const BACKEND_NAMES: Record<string, string> = {
  webgpu: 'WebGPU',
  cpu: 'CPU (WebAssembly)',
};

export function isBackendChoice(value: string | null): value is BackendChoice {
  return value === 'auto' || value === 'webgpu' || value === 'cpu';
}

export function mountSettings(elements: SettingsElements, onBackend: (choice: BackendChoice) => void) {
  const d = DEFAULT_SETTINGS;
  elements.epochs.value = String(d.epochs);
  elements.learningRate.value = String(d.learningRate);
  elements.batchSize.value = String(d.batchSize);
  elements.hiddenUnits.value = String(d.hiddenUnits);
  elements.dropout.value = String(d.dropout);
  elements.validationPercent.value = String(d.valFraction * 100);
  elements.seed.value = String(d.seed);
  elements.form.addEventListener('submit', (event) => event.preventDefault());
  elements.backend.addEventListener('change', () => {
    if (isBackendChoice(elements.backend.value)) onBackend(elements.backend.value);
  });

  /** The settings, or null after showing the browser's message for an invalid field. */
  function read(): TrainSettings | null {
    if (!elements.form.reportValidity()) return null;
    return {
      epochs: elements.epochs.valueAsNumber,
      learningRate: elements.learningRate.valueAsNumber,
      batchSize: elements.batchSize.valueAsNumber,
      hiddenUnits: elements.hiddenUnits.valueAsNumber,
      dropout: elements.dropout.valueAsNumber,
      valFraction: elements.validationPercent.valueAsNumber / 100,
      seed: elements.seed.valueAsNumber,
    };
  }

  function render(state: AppState): void {
    const { engine } = state;
    elements.backend.value = engine.choice;
    elements.backend.disabled = isTraining(state) || engine.status === 'starting';
    const label = elements.backendLabel;
    label.dataset.status = engine.status;
    label.dataset.backend = engine.backend ?? '';
    if (engine.status === 'ready' && engine.backend) {
      label.textContent = `Backend in use: ${BACKEND_NAMES[engine.backend]}`;
    } else if (engine.status === 'starting') {
      label.textContent = 'Starting the training engine…';
    } else {
      label.textContent = 'Training engine not running';
    }
    const note = engine.note ?? (engine.lostGpu ? 'The GPU stopped responding, so training runs on the CPU now.' : null);
    const detail = engine.noteDetail ?? engine.lostGpu;
    elements.backendNote.textContent = note ?? '';
    elements.backendNote.title = detail ?? '';
    elements.backendNote.hidden = !note;
    elements.backendDetail.textContent = detail ?? '';
    elements.backendDetails.hidden = !note || !detail;
  }

  return { read, render };
}
