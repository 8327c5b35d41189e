// "Try it": classify new pictures with the trained model and show the top predictions.

import { acceptDrops } from './drop-zone';
import { formatPercent, h } from './dom';
import type { AppState } from '../app/state';
import { Heatmaps, type ComputeHeatmap } from './heatmap';

const SHOWN = 3;

export function mountPredict(
  elements: { zone: HTMLElement; input: HTMLInputElement; list: HTMLUListElement; hint: HTMLElement },
  predict: (files: File[]) => void,
  heatmap: ComputeHeatmap,
) {
  const { zone, input, list, hint } = elements;
  const heatmaps = new Heatmaps(heatmap);
  acceptDrops(zone, (data) => predict([...data.files]));
  input.addEventListener('change', () => {
    if (input.files) predict([...input.files]);
    input.value = '';
  });

  return function render(state: AppState): void {
    const ready = state.trained !== null;
    input.disabled = !ready;
    zone.classList.toggle('disabled', !ready);
    hint.textContent = ready ? 'Drop pictures here or choose them to see what the model says.' : 'Train a model first.';
    heatmaps.keepOnly(state.predictions.map((result) => String(result.id)));
    list.replaceChildren(
      ...state.predictions.map((result) => {
        const item = h('li', { class: 'prediction', 'data-testid': 'prediction', 'data-file': result.fileName });
        item.append(h('strong', {}, result.fileName));
        if (result.error) {
          item.dataset.error = result.error;
          item.append(h('span', { class: 'error-text' }, `: ${result.error}`));
        } else if (!result.predictions) {
          item.append(' …');
        } else {
          item.dataset.topLabel = result.predictions[0]?.label ?? '';
          item.dataset.topProbability = String(result.predictions[0]?.probability ?? '');
          item.append(
            h(
              'ol',
              {},
              ...result.predictions.slice(0, SHOWN).map(({ label, probability }) =>
                h(
                  'li',
                  { 'data-label': label, 'data-probability': probability },
                  h('span', { class: 'bar', style: `width:${(probability * 100).toFixed(1)}%` }),
                  h('span', { class: 'bar-text' }, `${label} ${formatPercent(probability)}`),
                ),
              ),
            ),
            heatmaps.toggle(String(result.id), result.file, result.fileName),
          );
        }
        return item;
      }),
    );
  };
}
