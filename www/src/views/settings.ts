// The training settings form: phase 1 (the head), the recipe (how many backbone blocks phase 2
// fine-tunes, with the engine's recommendation as the default), phase 2's advanced settings, and
// the backend selector.

import {
  DEFAULT_FINE_TUNE,
  DEFAULT_SETTINGS,
  type BackendChoice,
  type FineTuneSettings,
  type Recommendation,
  type TrainSettings,
} from './protocol';
import { h } from './dom';
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
  recommendation: HTMLElement;
  blocks: HTMLInputElement;
  /** Says the blocks field's range and what a unit is on the running backbone. */
  blocksRange: HTMLElement;
  recipeChoice: HTMLElement;
  useRecommendation: HTMLButtonElement;
  advanced: HTMLDetailsElement;
  fineEpochs: HTMLInputElement;
  fineLearningRate: HTMLInputElement;
  backboneLrFactor: HTMLInputElement;
  backboneRate: HTMLElement;
  labelSmoothing: HTMLInputElement;
  patience: HTMLInputElement;
  fineBatchSize: HTMLInputElement;
  viewsPerImage: HTMLInputElement;
  augment: HTMLInputElement;
  horizontalFlip: HTMLInputElement;
  colorJitter: HTMLInputElement;
  minCrop: HTMLInputElement;
}

const BACKEND_NAMES: Record<string, string> = {
  webgpu: 'WebGPU',
  cpu: 'CPU (WebAssembly)',
};

export function isBackendChoice(value: string | null): value is BackendChoice {
  return value === 'auto' || value === 'webgpu' || value === 'cpu';
}

export function recipeName(unfreeze: number): string {
  if (unfreeze === 0) return 'head only';
  return unfreeze === 1 ? 'fine-tune the last block' : `fine-tune the last ${unfreeze} blocks`;
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
  const f = DEFAULT_FINE_TUNE;
  // The engine says how many units its backbone has; until it runs, the field has no upper bound.
  let maxUnfreeze: number | null = null;
  elements.fineEpochs.value = String(f.epochs);
  elements.fineLearningRate.value = String(f.learningRate);
  elements.backboneLrFactor.value = String(f.backboneLrFactor);
  elements.labelSmoothing.value = String(f.labelSmoothing);
  elements.patience.value = String(f.patience);
  elements.fineBatchSize.value = String(f.batchSize);
  elements.viewsPerImage.value = String(f.viewsPerImage);
  elements.augment.checked = f.augmentation.enabled;
  elements.horizontalFlip.checked = f.augmentation.horizontalFlip;
  elements.colorJitter.value = String(f.augmentation.colorJitter);
  elements.minCrop.value = String(f.augmentation.minCropArea * 100);

  elements.form.addEventListener('submit', (event) => event.preventDefault());
  elements.backend.addEventListener('change', () => {
    if (isBackendChoice(elements.backend.value)) onBackend(elements.backend.value);
  });

  // The blocks field follows the recommendation (which changes as pictures are added) until the
  // user picks a number; "Use the recommendation" goes back to following it.
  let recommended: Recommendation | null = null;
  let overridden = false;
  elements.blocks.addEventListener('input', () => {
    overridden = recommended === null || elements.blocks.value !== String(recommended.unfreeze);
    showRecipe();
  });
  elements.useRecommendation.addEventListener('click', () => {
    overridden = false;
    if (recommended) elements.blocks.value = String(recommended.unfreeze);
    showRecipe();
  });
  for (const input of [elements.fineLearningRate, elements.backboneLrFactor]) {
    input.addEventListener('input', showBackboneRate);
  }
  elements.augment.addEventListener('change', showAugmentation);
  showBackboneRate();
  showAugmentation();

  function showRecipe(): void {
    const blocks = elements.blocks.valueAsNumber;
    const valid = Number.isInteger(blocks) && blocks >= 0 && (maxUnfreeze === null || blocks <= maxUnfreeze);
    elements.recipeChoice.textContent = valid ? `Recipe: ${recipeName(blocks)}` : '';
    elements.recipeChoice.dataset.unfreeze = valid ? String(blocks) : '';
    elements.useRecommendation.hidden = !overridden || recommended === null;
  }

  function showBackboneRate(): void {
    const rate = elements.fineLearningRate.valueAsNumber;
    const factor = elements.backboneLrFactor.valueAsNumber;
    elements.backboneRate.textContent =
      Number.isFinite(rate) && Number.isFinite(factor)
        ? `backbone rate = head rate × ${factor} = ${Number((rate * factor).toPrecision(3))}`
        : 'backbone rate = head rate × factor';
  }

  function showAugmentation(): void {
    const on = elements.augment.checked;
    for (const input of [elements.horizontalFlip, elements.colorJitter, elements.minCrop]) input.disabled = !on;
  }

  /** Whether every field is valid; if not, the browser says which and why. */
  function valid(): boolean {
    if (elements.form.checkValidity()) return true;
    // A closed <details> hides its invalid fields from the browser's message: open it first.
    if (elements.advanced.querySelector(':invalid')) elements.advanced.open = true;
    elements.form.reportValidity();
    return false;
  }

  /** The settings of both phases, or null after showing the browser's message for an invalid field. */
  function read(): { head: TrainSettings; fine: FineTuneSettings } | null {
    if (!valid()) return null;
    return {
      head: {
        epochs: elements.epochs.valueAsNumber,
        learningRate: elements.learningRate.valueAsNumber,
        batchSize: elements.batchSize.valueAsNumber,
        hiddenUnits: elements.hiddenUnits.valueAsNumber,
        dropout: elements.dropout.valueAsNumber,
        valFraction: elements.validationPercent.valueAsNumber / 100,
        seed: elements.seed.valueAsNumber,
      },
      fine: {
        unfreeze: elements.blocks.valueAsNumber,
        epochs: elements.fineEpochs.valueAsNumber,
        learningRate: elements.fineLearningRate.valueAsNumber,
        backboneLrFactor: elements.backboneLrFactor.valueAsNumber,
        labelSmoothing: elements.labelSmoothing.valueAsNumber,
        patience: elements.patience.valueAsNumber,
        batchSize: elements.fineBatchSize.valueAsNumber,
        viewsPerImage: elements.viewsPerImage.valueAsNumber,
        augmentation: augmentation(),
      },
    };
  }

  /** The augmentation as set now (for the preview too; an invalid number falls back to the default). */
  function augmentation(): FineTuneSettings['augmentation'] {
    const number = (input: HTMLInputElement, fallback: number) => (input.validity.valid ? input.valueAsNumber : fallback);
    const a = DEFAULT_FINE_TUNE.augmentation;
    return {
      enabled: elements.augment.checked,
      horizontalFlip: elements.horizontalFlip.checked,
      colorJitter: number(elements.colorJitter, a.colorJitter),
      minCropArea: number(elements.minCrop, a.minCropArea * 100) / 100,
    };
  }

  let shownRecommendation = '';
  function render(state: AppState): void {
    const { engine } = state;
    elements.backend.value = engine.choice;
    elements.backend.disabled = isTraining(state) || engine.status === 'starting' || state.backbone.loading;
    if (engine.maxUnfreeze !== null && engine.maxUnfreeze !== maxUnfreeze) {
      maxUnfreeze = engine.maxUnfreeze;
      elements.blocks.max = String(maxUnfreeze);
      elements.blocksRange.textContent =
        `0 = head only; up to ${maxUnfreeze} (${engine.unitsDescription ?? 'backbone units'}, counted from the end)`;
      // A number the new backbone does not have becomes its largest.
      if (elements.blocks.valueAsNumber > maxUnfreeze) elements.blocks.value = String(maxUnfreeze);
      showRecipe();
    }
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

    const { recommendation } = state.summary;
    const signature = JSON.stringify(recommendation);
    if (signature !== shownRecommendation) {
      shownRecommendation = signature;
      recommended = state.summary.images > 0 ? recommendation : null;
      const box = elements.recommendation;
      box.dataset.unfreeze = recommended ? String(recommended.unfreeze) : '';
      box.replaceChildren(
        ...(recommended
          ? ['Recommended: ', h('strong', {}, recipeName(recommended.unfreeze)), `. ${recommended.reason}`]
          : [recommendation.reason]),
      );
      if (!overridden) elements.blocks.value = String(recommended?.unfreeze ?? 0);
      showRecipe();
    }
  }

  return { read, augmentation, render };
}
