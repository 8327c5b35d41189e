// The "same picture twice" warning: each group of held pictures whose compact copies (what the
// engine keeps of them) are equal, so the same file or the same pixels in another file, with
// their paths, and whether they are in different classes.

import { duplicateGroups } from '../app/duplicates';
import type { AppState } from '../app/state';
import { h } from './dom';

export function mountDuplicates(elements: { box: HTMLElement; list: HTMLUListElement }): (state: AppState) => void {
  let shownVersions = '';
  /** What the list shows, so that pictures added without a new duplicate leave it alone. */
  let shownGroups = '';
  return (state) => {
    const versions = `${state.picturesVersion}/${state.hashesVersion}`;
    if (versions === shownVersions) return;
    shownVersions = versions;
    const groups = duplicateGroups(state.images, state.pictureHashes);
    const signature = JSON.stringify(groups.map((group) => group.map((image) => [image.key, image.label, image.path])));
    if (signature === shownGroups) return;
    shownGroups = signature;
    const items = groups.map((group) => {
      const labels = [...new Set(group.map((image) => image.label))];
      const paths = group.map((image) => image.path);
      const names: (Node | string)[] = [];
      paths.forEach((path, i) => {
        if (i > 0) names.push(i === paths.length - 1 ? ' and ' : ', ');
        names.push(h('code', {}, path));
      });
      return h(
        'li',
        { 'data-testid': 'duplicate', 'data-paths': paths.join('|'), 'data-across': String(labels.length > 1) },
        ...names,
        labels.length > 1 ? ` are the same picture, in classes ${labels.map((l) => `"${l}"`).join(' and ')}` : ' are the same picture',
      );
    });
    elements.box.hidden = items.length === 0;
    elements.list.replaceChildren(...items);
  };
}
