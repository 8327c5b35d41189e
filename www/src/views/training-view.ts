// The training panel: Train/Stop, feature-extraction and view-caching progress, timings, the
// epoch log of both phases and the last epoch's metrics as text (the chart shows the same numbers
// as curves; the final evaluation has its own view).

import { MetricsChart } from './chart';
import { formatBytes, formatPercent, formatSeconds, h } from './dom';
import { remainingText, remainingTime } from '../app/eta';
import { isTraining, type AppState, type EpochRecord, type TrainingState } from '../app/state';

export interface TrainingElements {
  train: HTMLButtonElement;
  stop: HTMLButtonElement;
  problem: HTMLElement;
  status: HTMLElement;
  /** The time left, while a run goes. */
  eta: HTMLElement;
  progress: HTMLProgressElement;
  progressText: HTMLElement;
  cacheRow: HTMLElement;
  cacheProgress: HTMLProgressElement;
  cacheProgressText: HTMLElement;
  timings: HTMLElement;
  notes: HTMLUListElement;
  earlyStop: HTMLElement;
  chart: HTMLElement;
  log: HTMLTableSectionElement;
  metrics: HTMLElement;
}

const STAGE_NAMES = { head: '1 · head', fine: '2 · fine-tune' } as const;

export function mountTrainingView(elements: TrainingElements, actions: { train(): void; stop(): void }) {
  elements.train.addEventListener('click', () => actions.train());
  elements.stop.addEventListener('click', () => actions.stop());
  let chart: MetricsChart | null = null;
  let loggedEpochs = 0;
  let firstLogged: EpochRecord | undefined;

  return function render(state: AppState): void {
    const { training, summary, engine } = state;
    const busy = isTraining(state);
    const loadingBackbone = state.backbone.loading;
    elements.train.disabled =
      busy || !summary.trainable || engine.status !== 'ready' || loadingBackbone || state.adding > 0;
    elements.stop.hidden = !busy;

    const problem =
      engine.status !== 'ready'
        ? 'the training engine is not ready'
        : loadingBackbone
          ? 'the new backbone is still loading'
          : state.adding > 0
          ? 'pictures are still being read'
          : summary.problem;
    elements.problem.textContent = problem && !busy ? `Train is disabled: ${problem}.` : '';
    elements.problem.hidden = !problem || busy;

    elements.status.dataset.phase = training.phase;
    elements.status.dataset.helperAnswers = String(training.helperAnswers ?? '');
    elements.status.dataset.paused = String(busy && training.paused);
    elements.status.textContent = (busy && training.paused ? 'Paused. ' : '') + statusText(state);

    const left = remainingTime(training, training.plan);
    elements.eta.hidden = left === null;
    elements.eta.dataset.ms = left ? String(Math.round(left.ms)) : '';
    elements.eta.dataset.untimed = left ? String(left.untimed.length) : '';
    elements.eta.textContent = left ? (training.paused ? 'Paused: ' : '') + remainingText(left) : '';

    const { featuresDone, featuresTotal } = training;
    elements.progress.max = Math.max(featuresTotal, 1);
    elements.progress.value = featuresTotal === 0 && training.phase !== 'idle' ? 1 : featuresDone;
    elements.progress.hidden = training.phase === 'idle';
    elements.progressText.textContent =
      training.phase === 'idle'
        ? ''
        : featuresTotal === 0
          ? 'Features: all cached from the last run'
          : `Features: ${featuresDone} / ${featuresTotal} images`;

    renderCache(elements, training);
    renderTimings(elements.timings, training);
    renderEarlyStop(elements.earlyStop, training);
    if (elements.notes.childElementCount !== training.notes.length) {
      elements.notes.replaceChildren(...training.notes.map((note) => h('li', { 'data-testid': 'train-note' }, `Note: ${note}.`)));
    }
    elements.notes.hidden = training.notes.length === 0;

    const epochs = training.epochs;
    if (epochs.length > 0 && !chart) chart = new MetricsChart(elements.chart);
    chart?.show(epochs);
    elements.chart.hidden = epochs.length === 0;

    // Rows are appended as epochs arrive (a head run logs up to 300): rebuilding the table on
    // each epoch made every frame slower than the last. A new run starts the table again.
    if (epochs.length < loggedEpochs || (loggedEpochs > 0 && epochs[0] !== firstLogged)) {
      elements.log.replaceChildren();
      loggedEpochs = 0;
    }
    if (epochs.length > loggedEpochs) {
      elements.log.append(...epochs.slice(loggedEpochs).map(epochRow));
      loggedEpochs = epochs.length;
      firstLogged = epochs[0];
    }

    const last = epochs.at(-1);
    const metrics = elements.metrics;
    metrics.hidden = !last;
    metrics.dataset.stage = last?.stage ?? '';
    metrics.dataset.epoch = last ? String(last.epoch) : '';
    metrics.dataset.trainLoss = last ? String(last.trainLoss) : '';
    metrics.dataset.trainAccuracy = last ? String(last.trainAccuracy) : '';
    metrics.dataset.valLoss = last?.valLoss == null ? '' : String(last.valLoss);
    metrics.dataset.valAccuracy = last?.valAccuracy == null ? '' : String(last.valAccuracy);
    metrics.textContent = last
      ? `${last.stage === 'head' ? 'Head' : 'Fine-tuning'} epoch ${last.epoch}: train loss ${last.trainLoss.toFixed(4)}, ` +
        `train accuracy ${formatPercent(last.trainAccuracy)}` +
        (last.valAccuracy === null
          ? ' (no validation images)'
          : `; validation loss ${last.valLoss?.toFixed(4)}, validation accuracy ${formatPercent(last.valAccuracy)}` +
            (last.valAccuracyInterval
              ? ` (95 % interval ${formatPercent(last.valAccuracyInterval[0])}–${formatPercent(last.valAccuracyInterval[1])})`
              : ''))
      : '';
  };
}

/** One row of the epoch log. */
function epochRow(e: EpochRecord): HTMLElement {
  return h(
    'tr',
    {
      'data-testid': 'epoch-row',
      'data-stage': e.stage,
      'data-epoch': e.epoch,
      'data-val-loss': e.valLoss ?? '',
      'data-val-accuracy': e.valAccuracy ?? '',
      'data-best-val-accuracy': e.bestValAccuracy ?? '',
      class: `stage-${e.stage}`,
    },
    h('td', { class: 'stage' }, STAGE_NAMES[e.stage]),
    h('td', {}, `${e.epoch} / ${e.epochs}`),
    h('td', {}, e.trainLoss.toFixed(4)),
    h('td', {}, formatPercent(e.trainAccuracy)),
    h('td', {}, e.valLoss === null ? '–' : e.valLoss.toFixed(4)),
    h('td', {}, formatPercent(e.valAccuracy)),
    h('td', {}, formatSeconds(e.epochMs)),
  );
}

/** Phase 2's first step: a backbone pass per view, up to the first unfrozen block. */
function renderCache(elements: TrainingElements, training: TrainingState): void {
  const fine = training.fine;
  elements.cacheRow.hidden = !fine;
  if (!fine) return;
  elements.cacheProgress.max = Math.max(fine.cacheTotal, 1);
  elements.cacheProgress.value = fine.cacheDone;
  const text = elements.cacheProgressText;
  text.dataset.done = String(fine.cacheDone);
  text.dataset.total = String(fine.cacheTotal);
  text.dataset.bytes = String(fine.cacheBytes);
  text.textContent =
    `Views for fine-tuning: ${fine.cacheDone} / ${fine.cacheTotal} cached` +
    ` · cache: ${formatBytes(fine.cacheBytes)}`;
}

function renderTimings(timings: HTMLElement, training: TrainingState): void {
  const perEpoch = (stage: EpochRecord['stage']) => {
    const epochs = training.epochs.filter((e) => e.stage === stage);
    if (epochs.length === 0) return '';
    return ` (${formatSeconds(epochs.reduce((sum, e) => sum + e.epochMs, 0) / epochs.length)} per epoch)`;
  };
  const fine = training.fine;
  timings.replaceChildren(
    h('span', { 'data-testid': 'feature-time', 'data-ms': training.featureMs ?? '' }, `feature extraction ${formatSeconds(training.featureMs)}`),
    ' · ',
    h('span', { 'data-testid': 'epoch-time', 'data-ms': training.trainMs ?? '' }, `head training ${formatSeconds(training.trainMs)}`),
    perEpoch('head'),
    ...(fine
      ? [
          ' · ',
          h('span', { 'data-testid': 'cache-time', 'data-ms': fine.cacheMs ?? '' }, `caching views ${formatSeconds(fine.cacheMs)}`),
          ' · ',
          h('span', { 'data-testid': 'fine-time', 'data-ms': fine.fineMs ?? '' }, `fine-tuning ${formatSeconds(fine.fineMs)}`),
          perEpoch('fine'),
        ]
      : []),
  );
  timings.hidden = training.phase === 'idle';
}

function renderEarlyStop(note: HTMLElement, training: TrainingState): void {
  const fine = training.fine;
  const keptHead = fine?.bestEpoch === 0;
  const shown = fine?.stoppedEarly === true || keptHead;
  note.hidden = !shown;
  note.dataset.bestEpoch = fine?.bestEpoch == null ? '' : String(fine.bestEpoch);
  if (!shown) return;
  const ran = training.epochs.filter((e) => e.stage === 'fine').length;
  const ended = fine.stoppedEarly
    ? `Early stopping ended fine-tuning after epoch ${ran}: the validation loss had not improved for ${ran - (fine.bestEpoch ?? ran)} epochs. `
    : '';
  note.textContent = keptHead
    ? `${ended}Fine-tuning classified fewer validation pictures correctly than the head alone, so the phase-1 model was kept.`
    : `${ended}The weights of fine-tuning epoch ${fine.bestEpoch ?? '?'} (the best validation loss) were kept.`;
}

function statusText(state: AppState): string {
  const { training } = state;
  const split = training.split ? ` on ${training.split.train} training / ${training.split.val} validation images` : '';
  const blocks = (n: number) => `the last ${n === 1 ? 'block' : `${n} blocks`} of the backbone`;
  switch (training.phase) {
    case 'idle':
      return '';
    case 'features':
      return 'Phase 1: running the backbone on your pictures…';
    case 'training':
      return `Phase 1: training the classifier head${split}…`;
    case 'caching':
      return `Phase 2: running the frozen part of the backbone on each training view, once…`;
    case 'fine-tuning':
      return `Phase 2: fine-tuning ${blocks(training.fine?.unfreeze ?? 0)} with the head${split}…`;
    case 'evaluating':
      return 'Evaluating the model on the validation pictures…';
    case 'done': {
      const what = state.trained?.fineTuned ? `the head and ${blocks(state.trained.fineTuned)}` : 'the head';
      return `Done: trained ${what}${split}.`;
    }
    case 'stopped': {
      const last = training.epochs.at(-1);
      if (!state.trained || !last) return 'Stopped before the first epoch.';
      return `Stopped after ${last.stage === 'head' ? 'head' : 'fine-tuning'} epoch ${last.epoch}.`;
    }
    case 'failed':
      return training.error ?? 'Training failed.';
  }
}
