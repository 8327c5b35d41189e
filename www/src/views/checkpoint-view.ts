// The offer to continue an interrupted training run from its checkpoint (see app/checkpoint.ts):
// shown when a checkpoint is kept and no run is going on, that is after a reload or a crash.

import { describeCheckpoint } from '../app/checkpoint';
import { isTraining, type AppState } from '../app/state';
import { h } from './dom';

export function mountCheckpoint(
  box: HTMLElement,
  actions: { continueTraining: () => void; discard: () => void },
): (state: AppState) => void {
  const text = h('span', {});
  const continueButton = h('button', { type: 'button', 'data-testid': 'checkpoint-continue' }, 'Continue from the checkpoint');
  const discard = h('button', { type: 'button', class: 'secondary', 'data-testid': 'checkpoint-discard' }, 'Discard it');
  continueButton.addEventListener('click', actions.continueTraining);
  discard.addEventListener('click', actions.discard);
  box.append(text, ' ', continueButton, ' ', discard);

  return (state) => {
    const checkpoint = state.checkpoint;
    box.dataset.phase = checkpoint?.phase ?? '';
    box.dataset.epoch = checkpoint ? String(checkpoint.epoch) : '';
    box.dataset.continued = String(checkpoint?.continued ?? false);
    box.hidden = !checkpoint || isTraining(state);
    if (!checkpoint) return;
    const busy = state.backbone.loading || state.engine.status !== 'ready';
    continueButton.hidden = checkpoint.continued;
    continueButton.disabled = busy;
    discard.hidden = checkpoint.continued;
    text.textContent = checkpoint.continued
      ? `The engine now starts from the checkpoint (${describeCheckpoint(checkpoint)}): press Train to continue training.`
      : `Training was interrupted (the page was reloaded or the engine stopped). A checkpoint was kept at ${describeCheckpoint(checkpoint)}.`;
  };
}
