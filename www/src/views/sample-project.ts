// "Try the sample project": a small set of real photos (made at setup by
// scripts/make_sample.py into public/sample/, served from the page's own origin) added like a
// dropped folder, so a first visitor can press Train at once. "New project" empties the page.

import type { Picked, PickedFile } from './drop-zone';
import { isTraining, type AppState } from '../app/state';
import { h } from './dom';
import { messageOf } from '../app/context';

interface Manifest {
  name: string;
  about: string;
  licence: string;
  classes: Record<string, string[]>;
}

export interface SampleActions {
  addPicked(picked: Picked): void;
  clearAll(): Promise<void>;
  reportError(text: string): void;
}

/** The sample's pictures, fetched from `base` (the folder holding manifest.json). */
export async function pickedFromSample(base: URL): Promise<{ manifest: Manifest; picked: Picked }> {
  const response = await fetch(new URL('manifest.json', base));
  if (!response.ok) throw new Error(`the sample project is not on this server (HTTP ${response.status}); scripts/serve.sh makes it`);
  const manifest = (await response.json()) as Manifest;
  const files: PickedFile[] = [];
  for (const [label, paths] of Object.entries(manifest.classes)) {
    for (const path of paths) {
      const picture = await fetch(new URL(path, base));
      if (!picture.ok) throw new Error(`${path}: HTTP ${picture.status}`);
      const blob = await picture.blob();
      files.push({ label, path, file: new File([blob], path.slice(path.lastIndexOf('/') + 1), { type: blob.type }) });
    }
  }
  return { manifest, picked: { classes: Object.keys(manifest.classes), files, problems: [] } };
}

export function mountSampleProject(container: HTMLElement, base: URL, actions: SampleActions) {
  const sample = h('button', { type: 'button', 'data-testid': 'sample-project' }, 'Try the sample project');
  const fresh = h('button', { type: 'button', class: 'secondary', 'data-testid': 'new-project' }, 'New project');
  const about = h('p', { class: 'small muted', 'data-testid': 'sample-about' });
  about.hidden = true;
  const hint = h('span', { class: 'small muted' }, 'brick, grass and gravel: crops of CC0 photos that scikit-image ships');
  container.append(h('div', { class: 'project-actions' }, sample, hint, fresh), about);
  let loading = false;

  sample.addEventListener('click', () => {
    loading = true;
    sample.disabled = true;
    pickedFromSample(base)
      .then(({ manifest, picked }) => {
        about.hidden = false;
        about.textContent = `${manifest.name}: ${manifest.about} Licence: ${manifest.licence}.`;
        actions.addPicked(picked);
      })
      .catch((error: unknown) => actions.reportError(`Could not load the sample project: ${messageOf(error)}.`))
      .finally(() => {
        loading = false;
        sample.disabled = false;
      });
  });
  fresh.addEventListener('click', () => {
    if (!confirm('Start a new project? Every class and picture is removed from this page and this browser.')) return;
    about.hidden = true;
    void actions.clearAll();
  });

  return function render(state: AppState): void {
    const busy = isTraining(state) || state.adding > 0;
    sample.disabled = loading || busy;
    fresh.disabled = busy;
    fresh.hidden = state.classes.length === 0;
  };
}
