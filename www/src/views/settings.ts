// The training settings form: every field's default, range and help come from the engine's
// settings table (generated from src/recipe.rs), so the form refuses exactly what the engine
// refuses. Phase 1 (the head), the recipe (how many backbone units phase 2 fine-tunes, following
// the engine's recommendation until the user picks a number), phase 2's advanced settings, and
// the backend selector.

import type { BackendChoice, Recipe, Recommendation, Setting } from '../engine/protocol';
import { DEFAULT_RECIPE, SETTINGS } from '../engine/generated';
import { formatBytes, h } from './dom';
import { backboneInfo } from '../app/backbones';
import { isTraining, type AppState } from '../app/state';

export interface SettingsElements {
  form: HTMLFormElement;
  epochs: HTMLInputElement;
  learningRate: HTMLInputElement;
  batchSize: HTMLInputElement;
  hiddenUnits: HTMLInputElement;
  dropout: HTMLInputElement;
  validationPercent: HTMLInputElement;
  seed: HTMLInputElement;
  headPatience: HTMLInputElement;
  weightDecay: HTMLInputElement;
  standardize: HTMLInputElement;
  backend: HTMLSelectElement;
  backendLabel: HTMLElement;
  backendNote: HTMLElement;
  backendDetails: HTMLDetailsElement;
  backendDetail: HTMLElement;
  recommendation: HTMLElement;
  /** Beside Train: what Train will do, in one sentence. */
  plan: HTMLElement;
  /** The "Advanced" <details> around the backbone and every setting. */
  advancedSettings: HTMLDetailsElement;
  unfreeze: HTMLInputElement;
  /** Says the blocks field's range and what a unit is on the running backbone. */
  unfreezeRange: HTMLElement;
  recipeChoice: HTMLElement;
  useRecommendation: HTMLButtonElement;
  advanced: HTMLDetailsElement;
  fineEpochs: HTMLInputElement;
  fineSteps: HTMLInputElement;
  fineLearningRate: HTMLInputElement;
  backboneLrFactor: HTMLInputElement;
  warmupEpochs: HTMLInputElement;
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

/** Whether `value` lies in the setting's range; `units` bounds the `unfreeze` setting. Mirrors `Setting::accepts`. */
export function accepts(setting: Setting, value: number, units: number | null): boolean {
  const max = setting.maxIsUnits && units !== null ? { value: units, inclusive: true } : setting.max;
  const { min } = setting;
  return (
    Number.isFinite(value) &&
    (setting.kind !== 'integer' || Number.isInteger(value)) &&
    (min === null || (min.inclusive ? value >= min.value : value > min.value)) &&
    (max === null || (max.inclusive ? value <= max.value : value < max.value))
  );
}

/** The allowed range in words, as the engine says it. */
function rangeText(setting: Setting, units: number | null): string {
  const scale = setting.displayScale;
  const max = setting.maxIsUnits && units !== null ? { value: units, inclusive: true } : setting.max;
  const show = (v: number) => String(Number((v * scale).toPrecision(6)));
  const { min } = setting;
  if (min && max) return `${min.inclusive ? 'from' : 'above'} ${show(min.value)} ${max.inclusive ? 'to' : 'below'} ${show(max.value)}`;
  if (min) return `${min.inclusive ? 'at least' : 'above'} ${show(min.value)}`;
  return max ? `${max.inclusive ? 'at most' : 'below'} ${show(max.value)}` : '';
}

/** A setting's value as the form shows it (percentages for shares). */
function shown(setting: Setting, value: number): string {
  return String(Number((value * setting.displayScale).toPrecision(12)));
}

/** The one help line under a field: the engine's help, its default and its range. */
function helpLine(setting: Setting, units: number | null): string {
  const value = valueAt(DEFAULT_RECIPE, setting.key);
  const byDefault =
    setting.kind === 'boolean'
      ? `on by default: ${value === true ? 'yes' : 'no'}`
      : typeof value === 'number'
        ? `default ${shown(setting, value)}`
        : 'default: the recommendation';
  const range = setting.kind === 'boolean' ? '' : rangeText(setting, units);
  return `${setting.help} (${byDefault}${range ? `; ${range}` : ''})`;
}

/** What Train will do, as one sentence, from the engine's recommendation (or the user's number). */
export function planSentence(state: AppState, unfreeze: number | null, chosen: boolean): string {
  const { summary } = state;
  if (summary.images === 0) return 'Add your pictures, in at least two classes: Train then runs the recipe recommended for them.';
  const backbone = state.engine.backboneName ? backboneInfo(state.engine.backboneName).label : 'the backbone';
  const head = `Train will fit a new classifier head on ${backbone}'s features`;
  const then = unfreeze && unfreeze > 0 ? `, then ${recipeName(unfreeze)} at a lower learning rate` : '';
  const fewest = Math.min(...summary.classes.map((c) => c.count));
  const why = chosen
    ? 'as you chose under Advanced'
    : `recommended for ${summary.images} pictures with ${Number.isFinite(fewest) ? fewest : 0} in the smallest class`;
  return `${head}${then} (${why}).`;
}

function valueAt(recipe: Recipe, key: string): unknown {
  return key.split('.').reduce<unknown>((v, part) => (v as Record<string, unknown>)[part], recipe);
}

function setAt(recipe: Recipe, key: string, value: unknown): void {
  const parts = key.split('.');
  const last = parts.pop() as string;
  const target = parts.reduce<Record<string, unknown>>((v, part) => v[part] as Record<string, unknown>, recipe as unknown as Record<string, unknown>);
  target[last] = value;
}

export function mountSettings(elements: SettingsElements, onBackend: (choice: BackendChoice) => void) {
  /** The form field of each setting of the engine's table. */
  const inputs: Record<string, HTMLInputElement> = {
    unfreeze: elements.unfreeze,
    'head.epochs': elements.epochs,
    'head.learningRate': elements.learningRate,
    'head.batchSize': elements.batchSize,
    'head.hiddenUnits': elements.hiddenUnits,
    'head.dropout': elements.dropout,
    'head.valFraction': elements.validationPercent,
    'head.seed': elements.seed,
    'head.patience': elements.headPatience,
    'head.weightDecay': elements.weightDecay,
    'head.standardize': elements.standardize,
    'fineTune.epochs': elements.fineEpochs,
    'fineTune.steps': elements.fineSteps,
    'fineTune.learningRate': elements.fineLearningRate,
    'fineTune.backboneLrFactor': elements.backboneLrFactor,
    'fineTune.warmupEpochs': elements.warmupEpochs,
    'fineTune.labelSmoothing': elements.labelSmoothing,
    'fineTune.patience': elements.patience,
    'fineTune.batchSize': elements.fineBatchSize,
    viewsPerImage: elements.viewsPerImage,
    'augmentation.enabled': elements.augment,
    'augmentation.horizontalFlip': elements.horizontalFlip,
    'augmentation.colorJitter': elements.colorJitter,
    'augmentation.minCropArea': elements.minCrop,
  };
  // The engine says how many units its backbone has; until it runs, the field has no upper bound.
  let maxUnfreeze: number | null = null;
  const helps: Record<string, HTMLElement> = {};
  for (const setting of SETTINGS) {
    const input = inputs[setting.key];
    if (!input) throw new Error(`the settings form has no field for the engine's setting ${setting.key}`);
    input.dataset.setting = setting.key;
    input.title = setting.help;
    const help = h('small', { class: 'setting-help', 'data-testid': 'setting-help', 'data-help-for': setting.key }, helpLine(setting, null));
    helps[setting.key] = help;
    const label = input.closest('label');
    // The blocks field's range line says what a unit is: the help goes before it.
    const range = label?.querySelector('small');
    if (range) range.before(help);
    else label?.append(help);
    if (setting.kind === 'boolean') {
      input.checked = valueAt(DEFAULT_RECIPE, setting.key) === true;
      continue;
    }
    const scale = setting.displayScale;
    // Inclusive bounds are the browser's own min/max; exclusive ones are checked below.
    if (setting.min?.inclusive) input.min = String(Number((setting.min.value * scale).toPrecision(12)));
    if (setting.max?.inclusive) input.max = String(Number((setting.max.value * scale).toPrecision(12)));
    input.step = setting.kind === 'integer' ? '1' : 'any';
    input.required = true;
    const value = valueAt(DEFAULT_RECIPE, setting.key);
    if (typeof value === 'number') input.value = String(Number((value * scale).toPrecision(12)));
    input.addEventListener('input', () => check(setting));
  }

  /** Marks the field invalid, with the engine's range, exactly when the engine would refuse it. */
  function check(setting: Setting): void {
    const input = inputs[setting.key];
    const value = input.valueAsNumber / setting.displayScale;
    const ok = input.value === '' || accepts(setting, value, maxUnfreeze);
    input.setCustomValidity(ok ? '' : `${setting.label}: ${rangeText(setting, maxUnfreeze)}.`);
  }

  elements.form.addEventListener('submit', (event) => event.preventDefault());
  elements.backend.addEventListener('change', () => {
    if (isBackendChoice(elements.backend.value)) onBackend(elements.backend.value);
  });

  // The blocks field follows the recommendation (which changes as pictures are added) until the
  // user picks a number; "Use the recommendation" goes back to following it.
  let recommended: Recommendation | null = null;
  let overridden = false;
  let lastState: AppState | null = null;
  elements.unfreeze.addEventListener('input', () => {
    overridden = recommended === null || elements.unfreeze.value !== String(recommended.unfreeze);
    showRecipe();
  });
  elements.useRecommendation.addEventListener('click', () => {
    overridden = false;
    if (recommended) elements.unfreeze.value = String(recommended.unfreeze);
    showRecipe();
  });
  for (const input of [elements.fineLearningRate, elements.backboneLrFactor]) {
    input.addEventListener('input', showBackboneRate);
  }
  elements.augment.addEventListener('change', showAugmentation);
  showBackboneRate();
  showAugmentation();

  function showRecipe(): void {
    if (lastState) renderPlan(lastState);
    const blocks = elements.unfreeze.valueAsNumber;
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
    if (elements.advancedSettings.querySelector(':invalid')) elements.advancedSettings.open = true;
    if (elements.advanced.querySelector(':invalid')) elements.advanced.open = true;
    elements.form.reportValidity();
    return false;
  }

  /**
   * The recipe the form says, or null after showing the browser's message for an invalid field.
   * `unfreeze` is left to the engine's recommendation unless the user picked a number.
   */
  function read(): Recipe | null {
    for (const setting of SETTINGS) if (setting.kind !== 'boolean') check(setting);
    if (!valid()) return null;
    const recipe: Recipe = structuredClone(DEFAULT_RECIPE);
    for (const setting of SETTINGS) {
      const input = inputs[setting.key];
      setAt(recipe, setting.key, setting.kind === 'boolean' ? input.checked : input.valueAsNumber / setting.displayScale);
    }
    if (!overridden) recipe.unfreeze = null;
    return recipe;
  }

  /**
   * Puts a saved recipe (a project file's) into the form; `unfreeze: null` follows the
   * recommendation again. Only the engine's settings are read from it, each only when its type fits.
   */
  function apply(recipe: Recipe): void {
    for (const setting of SETTINGS) {
      if (setting.key === 'unfreeze') continue;
      const input = inputs[setting.key];
      let value: unknown;
      try {
        value = valueAt(recipe, setting.key);
      } catch {
        continue;
      }
      if (setting.kind === 'boolean') {
        if (typeof value === 'boolean') input.checked = value;
      } else if (typeof value === 'number' && Number.isFinite(value)) {
        input.value = shown(setting, value);
        check(setting);
      }
    }
    overridden = typeof recipe.unfreeze === 'number';
    if (typeof recipe.unfreeze === 'number') elements.unfreeze.value = String(recipe.unfreeze);
    else if (recommended) elements.unfreeze.value = String(recommended.unfreeze);
    showBackboneRate();
    showAugmentation();
    showRecipe();
    if (lastState) renderPlan(lastState);
  }

  function renderPlan(state: AppState): void {
    const blocks = elements.unfreeze.valueAsNumber;
    const unfreeze = overridden ? (Number.isInteger(blocks) ? blocks : null) : (recommended?.unfreeze ?? null);
    const text = planSentence(state, unfreeze, overridden);
    if (elements.plan.textContent !== text) elements.plan.textContent = text;
    elements.plan.dataset.unfreeze = unfreeze === null ? '' : String(unfreeze);
    elements.plan.dataset.recommended = String(!overridden);
  }

  /** The augmentation as set now (for the preview too; an invalid number falls back to the default). */
  function augmentation(): Recipe['augmentation'] {
    const number = (input: HTMLInputElement, fallback: number) => (input.validity.valid ? input.valueAsNumber : fallback);
    const a = DEFAULT_RECIPE.augmentation;
    return {
      enabled: elements.augment.checked,
      horizontalFlip: elements.horizontalFlip.checked,
      colorJitter: number(elements.colorJitter, a.colorJitter),
      minCropArea: number(elements.minCrop, a.minCropArea * 100) / 100,
    };
  }

  let shownRecommendation = '';
  let shownBackboneProblem = '';
  function render(state: AppState): void {
    lastState = state;
    const { engine } = state;
    // A refused or unkept backbone file is said under Advanced: open it so the message is seen.
    const backboneProblem = state.backbone.error ?? state.backbone.storageProblem ?? '';
    if (backboneProblem && backboneProblem !== shownBackboneProblem) elements.advancedSettings.open = true;
    shownBackboneProblem = backboneProblem;
    elements.backend.value = engine.choice;
    elements.backend.disabled = isTraining(state) || engine.status === 'starting' || state.backbone.loading;
    if (engine.maxUnfreeze !== null && engine.maxUnfreeze !== maxUnfreeze) {
      maxUnfreeze = engine.maxUnfreeze;
      elements.unfreeze.max = String(maxUnfreeze);
      check(SETTINGS.find((s) => s.key === 'unfreeze') as Setting);
      elements.unfreezeRange.textContent =
        `0 = head only; up to ${maxUnfreeze} (${engine.unitsDescription ?? 'backbone units'}, counted from the end)`;
      if (helps.unfreeze) helps.unfreeze.textContent = helpLine(SETTINGS.find((s) => s.key === 'unfreeze') as Setting, maxUnfreeze);
      // A number the new backbone does not have becomes its largest.
      if (elements.unfreeze.valueAsNumber > maxUnfreeze) elements.unfreeze.value = String(maxUnfreeze);
      showRecipe();
    }
    const label = elements.backendLabel;
    label.dataset.status = engine.status;
    label.dataset.backend = engine.backend ?? '';
    label.dataset.workers = String(engine.workers ?? '');
    // The engine's peak memory as the browser reports it, for people with many pictures (and the
    // scale benchmark) to see.
    label.dataset.memoryBytes = String(engine.memoryBytes ?? '');
    label.title = '';
    if (engine.status === 'ready' && engine.backend) {
      const memory = engine.memoryBytes === null ? '' : ` · engine memory ${formatBytes(engine.memoryBytes)}`;
      const cores = engine.workers && engine.workers > 1 ? ` on ${engine.workers} cores` : '';
      label.textContent = `Backend in use: ${BACKEND_NAMES[engine.backend]}${cores}${memory}`;
      if (memory) {
        label.title =
          'The training engine’s WebAssembly memory: its peak so far (pictures, features, model). GPU memory is not counted.';
      }
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
      if (!overridden) elements.unfreeze.value = String(recommended?.unfreeze ?? 0);
      showRecipe();
    }
    renderPlan(state);
  }

  return { read, augmentation, render, apply };
}
