// Pause / Resume beside Stop: the engine holds the run between two steps, keeping its state.

import { isTraining, type AppState } from '../app/state';

export function mountPauseButton(button: HTMLButtonElement, setPaused: (paused: boolean) => void) {
  let paused = false;
  button.addEventListener('click', () => setPaused(!paused));
  return function render(state: AppState): void {
    const busy = isTraining(state);
    paused = busy && state.training.paused;
    button.hidden = !busy;
    button.textContent = paused ? 'Resume' : 'Pause';
    button.dataset.paused = String(paused);
  };
}
