// The training panel: Train/Stop, feature-extraction progress, timings, the epoch log and the
// final metrics as text (the chart shows the same numbers as curves).

import { MetricsChart } from './chart';
import { formatPercent, formatSeconds, h } from './dom';
import { isTraining, type AppState } from './state';

export interface TrainingElements {
  train: HTMLButtonElement;
  stop: HTMLButtonElement;
  problem: HTMLElement;
  status: HTMLElement;
  progress: HTMLProgressElement;
  progressText: HTMLElement;
  timings: HTMLElement;
  chart: HTMLElement;
  log: HTMLTableSectionElement;
  metrics: HTMLElement;
}

export function mountTrainingView(elements: TrainingElements, actions: { train(): void; stop(): void }) {
  elements.train.addEventListener('click', () => actions.train());
  elements.stop.addEventListener('click', () => actions.stop());
  let chart: MetricsChart | null = null;
  let loggedEpochs = -1;

  return function render(state: AppState): void {
    const { training, summary, engine } = state;
    const busy = isTraining(state);
    elements.train.disabled = busy || !summary.trainable || engine.status !== 'ready' || state.adding > 0;
    elements.stop.hidden = !busy;

    const problem =
      engine.status !== 'ready'
        ? 'the training engine is not ready'
        : state.adding > 0
          ? 'pictures are still being read'
          : summary.problem;
    elements.problem.textContent = problem && !busy ? `Train is disabled: ${problem}.` : '';
    elements.problem.hidden = !problem || busy;

    elements.status.dataset.phase = training.phase;
    elements.status.textContent = statusText(state);

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

    const epochs = training.epochs;
    const perEpoch = epochs.length > 0 ? epochs.reduce((sum, e) => sum + e.epochMs, 0) / epochs.length : null;
    elements.timings.replaceChildren(
      h('span', { 'data-testid': 'feature-time', 'data-ms': training.featureMs ?? '' }, `feature extraction ${formatSeconds(training.featureMs)}`),
      ' · ',
      h('span', { 'data-testid': 'epoch-time', 'data-ms': training.trainMs ?? '' }, `head training ${formatSeconds(training.trainMs)}`),
      perEpoch === null ? '' : ` (${formatSeconds(perEpoch)} per epoch)`,
    );
    elements.timings.hidden = training.phase === 'idle';

    if (epochs.length > 0 && !chart) chart = new MetricsChart(elements.chart);
    chart?.show(epochs);
    elements.chart.hidden = epochs.length === 0;

    if (epochs.length !== loggedEpochs) {
      loggedEpochs = epochs.length;
      elements.log.replaceChildren(
        ...epochs.map((e) =>
          h(
            'tr',
            { 'data-testid': 'epoch-row', 'data-epoch': e.epoch },
            h('td', {}, `${e.epoch} / ${e.epochs}`),
            h('td', {}, e.trainLoss.toFixed(4)),
            h('td', {}, formatPercent(e.trainAccuracy)),
            h('td', {}, e.valLoss === null ? '–' : e.valLoss.toFixed(4)),
            h('td', {}, formatPercent(e.valAccuracy)),
            h('td', {}, formatSeconds(e.epochMs)),
          ),
        ),
      );
    }

    const last = epochs.at(-1);
    const metrics = elements.metrics;
    metrics.hidden = !last;
    metrics.dataset.epoch = last ? String(last.epoch) : '';
    metrics.dataset.trainLoss = last ? String(last.trainLoss) : '';
    metrics.dataset.trainAccuracy = last ? String(last.trainAccuracy) : '';
    metrics.dataset.valLoss = last?.valLoss == null ? '' : String(last.valLoss);
    metrics.dataset.valAccuracy = last?.valAccuracy == null ? '' : String(last.valAccuracy);
    metrics.textContent = last
      ? `Epoch ${last.epoch}: train loss ${last.trainLoss.toFixed(4)}, train accuracy ${formatPercent(last.trainAccuracy)}` +
        (last.valAccuracy === null
          ? ' (no validation images)'
          : `; validation loss ${last.valLoss?.toFixed(4)}, validation accuracy ${formatPercent(last.valAccuracy)}`)
      : '';
  };
}

function statusText(state: AppState): string {
  const { training } = state;
  const split = training.split ? ` on ${training.split.train} training / ${training.split.val} validation images` : '';
  switch (training.phase) {
    case 'idle':
      return '';
    case 'features':
      return 'Running the backbone on your pictures…';
    case 'training':
      return `Training the classifier head${split}…`;
    case 'done':
      return `Done: trained${split}.`;
    case 'stopped':
      return state.trained ? `Stopped after epoch ${training.epochs.at(-1)?.epoch}.` : 'Stopped before the first epoch.';
    case 'failed':
      return training.error ?? 'Training failed.';
  }
}
