// "Save project" and "Open project…": the buttons and the line that says how it went. A project
// file dropped on the pictures' drop zone comes here too (main.ts).

import type { ProjectStatus, Projects } from '../app/projects';
import { isTraining, type AppState } from '../app/state';
import { saveBytes } from './download';

export interface ProjectElements {
  save: HTMLButtonElement;
  input: HTMLInputElement;
  status: HTMLElement;
}

/** Asks before a project replaces the pictures on the page. */
export function confirmReplace(count: number): boolean {
  return confirm(
    `Open this project instead of the ${count} picture${count === 1 ? '' : 's'} on the page? ` +
      'They are removed from this page and this browser (save them as a project first to keep them).',
  );
}

export function mountProject(elements: ProjectElements, projects: Projects) {
  let busy = false;
  elements.save.addEventListener('click', async () => {
    busy = true;
    elements.save.disabled = true;
    try {
      const saved = await projects.save();
      if (saved) saveBytes(new Uint8Array(await saved.blob.arrayBuffer()), saved.fileName);
    } finally {
      busy = false;
    }
  });
  elements.input.addEventListener('change', () => {
    const file = elements.input.files?.[0];
    elements.input.value = '';
    if (file) void projects.open(file, confirmReplace);
  });

  return {
    showStatus(status: ProjectStatus): void {
      elements.status.textContent = status.text;
      elements.status.dataset.state = status.state;
      elements.status.classList.toggle('problem', status.state === 'refused');
    },
    render(state: AppState): void {
      const working = busy || projects.status.state === 'saving' || projects.status.state === 'opening';
      elements.save.disabled = working || state.classes.length === 0 || isTraining(state) || state.adding > 0;
      elements.input.disabled = working || isTraining(state);
    },
  };
}
