// "Find the bad labels": after training, the pictures a cross-validated model doubts (held out,
// each is predicted by a head that never saw its label), most suspicious first, each with
// "move to the suggested class" and "delete"; and the exact and near duplicates, across classes.

import { formatPercent, h } from './dom';
import { showThumbnail } from './thumbnail';
import { messageOf } from '../app/context';
import type { AppState, HeldImage, ModelInfo } from '../app/state';
import type { LabelCheck } from '../engine/protocol';

/** Suspects shown at most. */
const LIMIT = 10;

export interface LabelCheckActions {
  check(limit: number): Promise<LabelCheck>;
  /** Moves picture `key` to `label`, or deletes it (`label` null); resolves to why not, or null. */
  edit(key: number, label: string | null): Promise<string | null>;
}

export function mountSuspectsView(container: HTMLElement, actions: LabelCheckActions) {
  let model: ModelInfo | null = null;
  let result: LabelCheck | null = null;
  let busy = false;
  let notice: string | null = null;
  let last: AppState | null = null;

  const button = h('button', { type: 'button', 'data-testid': 'check-labels' }, 'Check the labels');
  const status = h('p', { class: 'muted', 'data-testid': 'label-check-status' });
  const body = h('div', {});
  container.replaceChildren(
    h('h3', {}, 'Find the bad labels'),
    h('p', { class: 'muted' }, 'Each picture is predicted by a model trained on the other pictures only; pictures it puts in another class are listed, most doubtful first.'),
    button,
    status,
    body,
  );

  const rerender = () => last && render(last);

  button.addEventListener('click', () => {
    if (busy) return;
    busy = true;
    notice = null;
    rerender();
    actions.check(LIMIT).then(
      (check) => {
        result = check;
        busy = false;
        rerender();
      },
      (error: unknown) => {
        busy = false;
        notice = `Could not check the labels: ${messageOf(error)}`;
        rerender();
      },
    );
  });

  function edit(key: number, label: string | null, done: string): void {
    busy = true;
    rerender();
    void actions.edit(key, label).then((refused) => {
      busy = false;
      if (refused) notice = refused;
      else {
        notice = `${done} Train again to update the model and check again.`;
        result = null;
      }
      rerender();
    });
  }

  function render(state: AppState): void {
    last = state;
    if (state.trained !== model) {
      // A new model (or none): the last check was about other pictures or another model.
      if (state.trained !== null) {
        result = null;
        notice = null;
      }
      model = state.trained;
    }
    container.hidden = state.trained === null && notice === null;
    button.disabled = busy || state.trained === null;
    status.textContent = busy ? 'Checking…' : (notice ?? (result ? summaryText(result) : ''));
    status.dataset.busy = String(busy);
    body.replaceChildren(...(result ? [suspectsTable(result, state), duplicatesList(result)] : []));
  }

  function suspectsTable(check: LabelCheck, state: AppState): HTMLElement {
    if (check.suspects.length === 0) {
      return h('p', { 'data-testid': 'suspects', 'data-count': 0 }, 'No picture looks mislabelled.');
    }
    return h(
      'table',
      { class: 'metrics-table', 'data-testid': 'suspects', 'data-count': check.suspects.length },
      h('caption', {}, 'Probably mislabelled'),
      h(
        'thead',
        {},
        h('tr', {}, h('th', {}, ''), h('th', {}, 'file'), h('th', {}, 'labelled'), h('th', {}, 'looks like'), h('th', {}, 'neighbours agree'), h('th', {}, '')),
      ),
      h(
        'tbody',
        {},
        ...check.suspects.map((s, rank) => {
          const picture = s.key === null ? undefined : state.images.get(s.key);
          const move = h('button', { type: 'button', 'data-testid': 'suspect-move', disabled: busy || s.key === null }, `Move to ${s.suggested}`);
          const remove = h('button', { type: 'button', 'data-testid': 'suspect-delete', disabled: busy || s.key === null }, 'Delete');
          if (s.key !== null) {
            const key = s.key;
            move.addEventListener('click', () => edit(key, s.suggested, `Moved ${s.fileName} to ${s.suggested}.`));
            remove.addEventListener('click', () => edit(key, null, `Deleted ${s.fileName}.`));
          }
          return h(
            'tr',
            { 'data-testid': 'suspect', 'data-rank': rank + 1, 'data-file': s.fileName, 'data-label': s.label, 'data-suggested': s.suggested, 'data-score': s.score },
            h('td', {}, picture ? thumbnail(picture) : null),
            h('td', {}, s.fileName),
            h('td', {}, `${s.label} (${formatPercent(s.labelProbability)})`),
            h('td', {}, `${s.suggested} (${formatPercent(s.suggestedProbability)})`),
            h('td', {}, formatPercent(s.neighboursSuggested)),
            h('td', {}, move, ' ', remove),
          );
        }),
      ),
    );
  }

  return render;
}

function summaryText(check: LabelCheck): string {
  return `Checked ${check.checked} pictures with ${check.folds}-fold cross-validation: ${check.suspects.length} doubtful, ${check.duplicates.length} group${check.duplicates.length === 1 ? '' : 's'} of duplicates.`;
}

function thumbnail(picture: HeldImage): HTMLImageElement {
  const image = h('img', { class: 'thumbnail', alt: '', width: 48, height: 48 });
  // Shown once loaded: the scaled copy's URL is not needed after that.
  image.addEventListener('load', showThumbnail(image, picture), { once: true });
  return image;
}

function duplicatesList(check: LabelCheck): HTMLElement {
  if (check.duplicates.length === 0) return h('p', { class: 'muted', 'data-testid': 'duplicates', 'data-count': 0 }, 'No duplicates found.');
  return h(
    'ul',
    { class: 'duplicates', 'data-testid': 'duplicates', 'data-count': check.duplicates.length },
    ...check.duplicates.map((group) =>
      h(
        'li',
        { 'data-testid': 'duplicate-group', 'data-kind': group.kind, 'data-mixed': String(group.mixedLabels) },
        `${group.kind === 'exact' ? 'Identical pictures' : `Near duplicates (features at least ${group.similarity.toFixed(3)} cosine-similar)`}${group.mixedLabels ? ' with different labels' : ''}: `,
        group.pictures.map((p) => `${p.fileName} (${p.label})`).join(', '),
      ),
    ),
  );
}
