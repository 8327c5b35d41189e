// The final metrics after training, as plain tables: accuracy, per-class precision / recall /
// support, the confusion matrix (rows = true class, columns = predicted) and the validation
// pictures the model got wrong (the most confident mistakes first, 50 at a time), with thumbnails
// of the pictures the page holds.

import { formatPercent, h } from './dom';
import type { Evaluation, Misclassified } from '../engine/protocol';
import type { AppState } from '../app/state';
import { Heatmaps, type ComputeHeatmap } from './heatmap';
import { showThumbnail } from './thumbnail';

export function mountEvaluationView(container: HTMLElement, heatmap: ComputeHeatmap) {
  let shown: Evaluation | null = null;
  const heatmaps = new Heatmaps(heatmap);
  /** Releases the thumbnails shown now, when the table is rebuilt. */
  let thumbnails: (() => void)[] = [];

  return function render(state: AppState): void {
    const { evaluation } = state.training;
    container.hidden = evaluation === null;
    if (evaluation === shown) return;
    shown = evaluation;
    for (const release of thumbnails) release();
    thumbnails = [];
    heatmaps.clear();
    if (!evaluation) {
      container.replaceChildren();
      return;
    }
    const thumbnail = (key: number | null): Node | null => {
      const picture = key === null ? undefined : state.images.get(key);
      if (!picture) return null;
      const image = h('img', { class: 'thumbnail', alt: '', width: 48, height: 48 });
      thumbnails.push(showThumbnail(image, picture));
      return image;
    };
    const fine = state.trained?.fineTuned ?? 0;
    const model = fine > 0 ? `head and the last ${fine === 1 ? 'block' : `${fine} blocks`} fine-tuned` : 'head only';
    container.replaceChildren(
      h('h3', {}, `Final model on the validation pictures (${model})`),
      overallTable(evaluation),
      classTable(evaluation),
      confusionTable(evaluation),
      misclassifiedTable(evaluation, thumbnail, (m) => {
        const image = m.key === null ? undefined : state.images.get(m.key);
        return image ? heatmaps.toggle(String(m.key), image.file, image.file.name) : null;
      }),
    );
  };
}

function overallTable(e: Evaluation): HTMLTableElement {
  return h(
    'table',
    {
      class: 'metrics-table',
      'data-testid': 'eval-overall',
      'data-images': e.images,
      'data-accuracy': e.accuracy,
      'data-accuracy-low': e.accuracyInterval[0],
      'data-accuracy-high': e.accuracyInterval[1],
      'data-loss': e.loss,
    },
    h(
      'tbody',
      {},
      h('tr', {}, h('th', { scope: 'row' }, 'validation pictures'), h('td', {}, String(e.images))),
      // With few validation pictures the accuracy says little: the 95 % (Wilson) interval says how little.
      h(
        'tr',
        {},
        h('th', { scope: 'row' }, 'accuracy'),
        h('td', {}, `${formatPercent(e.accuracy)} (95 % interval ${formatPercent(e.accuracyInterval[0])}–${formatPercent(e.accuracyInterval[1])})`),
      ),
      h('tr', {}, h('th', { scope: 'row' }, 'loss (cross-entropy)'), h('td', {}, e.loss.toFixed(4))),
    ),
  );
}

function classTable(e: Evaluation): HTMLTableElement {
  return h(
    'table',
    { class: 'metrics-table', 'data-testid': 'eval-classes' },
    h('caption', {}, 'Per class'),
    h('thead', {}, h('tr', {}, h('th', {}, 'class'), h('th', {}, 'precision'), h('th', {}, 'recall'), h('th', {}, 'support'))),
    h(
      'tbody',
      {},
      ...e.classes.map((c) =>
        h(
          'tr',
          {
            'data-label': c.label,
            'data-precision': c.precision ?? '',
            'data-recall': c.recall ?? '',
            'data-support': c.support,
          },
          h('th', { scope: 'row' }, c.label),
          h('td', {}, formatPercent(c.precision)),
          h('td', {}, formatPercent(c.recall)),
          h('td', {}, String(c.support)),
        ),
      ),
    ),
  );
}

function confusionTable(e: Evaluation): HTMLTableElement {
  const labels = e.classes.map((c) => c.label);
  return h(
    'table',
    { class: 'metrics-table confusion', 'data-testid': 'eval-confusion' },
    h('caption', {}, 'Confusion matrix: rows are the true class, columns the predicted one'),
    h(
      'thead',
      {},
      h('tr', {}, h('th', {}, 'true ↓ / predicted →'), ...labels.map((label) => h('th', { scope: 'col' }, label))),
    ),
    h(
      'tbody',
      {},
      ...e.confusion.map((row, t) =>
        h(
          'tr',
          { 'data-label': labels[t] },
          h('th', { scope: 'row' }, labels[t]),
          ...row.map((count, p) =>
            h('td', { 'data-count': count, class: count === 0 ? 'zero' : t === p ? 'right' : 'wrong' }, String(count)),
          ),
        ),
      ),
    ),
  );
}

/** Misclassified pictures shown at first, and added by each "Show more". */
const MISTAKES_PER_PAGE = 50;

/**
 * The validation pictures the model got wrong, the most confident mistakes first (those are the
 * likeliest labelling errors, and the model's worst habits), `MISTAKES_PER_PAGE` at a time: with
 * thousands of pictures there can be hundreds, and a table of all of them at once cost the page
 * a long frame.
 */
function misclassifiedTable(
  e: Evaluation,
  thumbnail: (key: number | null) => Node | null,
  heatmap: (m: Evaluation['misclassified'][number]) => Node | null,
): HTMLElement {
  if (e.misclassified.length === 0) {
    return h(
      'p',
      { class: 'muted', 'data-testid': 'eval-misclassified', 'data-count': 0 },
      'No validation picture was misclassified.',
    );
  }
  const mistakes = [...e.misclassified].sort((a, b) => b.probability - a.probability);
  const row = (m: Misclassified) =>
    h(
      'tr',
      {
        'data-testid': 'misclassified',
        'data-file': m.fileName,
        'data-true': m.trueLabel,
        'data-predicted': m.predictedLabel,
        'data-probability': m.probability,
      },
      h('td', {}, thumbnail(m.key)),
      h('td', {}, m.fileName),
      h('td', {}, m.trueLabel),
      h('td', {}, m.predictedLabel),
      h('td', {}, formatPercent(m.probability)),
      h('td', {}, heatmap(m)),
    );
  const body = h('tbody', {});
  const table = h(
    'table',
    { class: 'metrics-table', 'data-testid': 'eval-misclassified', 'data-count': mistakes.length },
    h('caption', {}, `Misclassified validation pictures (${mistakes.length}), the most confident mistakes first`),
    h(
      'thead',
      {},
      h('tr', {}, h('th', {}, ''), h('th', {}, 'file'), h('th', {}, 'true'), h('th', {}, 'predicted'), h('th', {}, 'probability'), h('th', {}, 'heatmap')),
    ),
    body,
  );
  const more = h('button', { type: 'button', 'data-testid': 'more-misclassified' });
  const showMore = () => {
    const shown = body.rows.length;
    body.append(...mistakes.slice(shown, shown + MISTAKES_PER_PAGE).map(row));
    table.dataset.shown = String(body.rows.length);
    const left = mistakes.length - body.rows.length;
    more.hidden = left === 0;
    more.textContent = `Show ${Math.min(left, MISTAKES_PER_PAGE)} more (${left} not shown)`;
  };
  more.addEventListener('click', showMore);
  showMore();
  return h('div', {}, table, more);
}
