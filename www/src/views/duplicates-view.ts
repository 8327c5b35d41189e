// The "same picture twice" warning: each group of held pictures with the very same bytes, with
// their paths, and whether they are in different classes.

import { duplicateGroups } from '../app/duplicates';
import type { AppState } from '../app/state';
import { h } from './dom';

export function mountDuplicates(elements: { box: HTMLElement; list: HTMLUListElement }): (state: AppState) => void {
  let shownHashes: AppState['pictureHashes'] | null = null;
  let shownImages: AppState['images'] | null = null;
  return (state) => {
    if (state.pictureHashes === shownHashes && state.images === shownImages) return;
    shownHashes = state.pictureHashes;
    shownImages = state.images;
    const items = duplicateGroups(state.images, state.pictureHashes).map((group) => {
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
        labels.length > 1 ? ` are the same file, in classes ${labels.map((l) => `"${l}"`).join(' and ')}` : ' are the same file',
      );
    });
    elements.box.hidden = items.length === 0;
    elements.list.replaceChildren(...items);
  };
}
