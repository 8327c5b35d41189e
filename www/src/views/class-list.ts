// The dataset view: one row per class with its image count and a remove button, the files that
// were not added (the reason training is not possible yet is shown by the Train button), whether
// the pictures outlive a reload, and "Clear all".

import { h } from './dom';
import { acceptDrops, pickedFromDrop, type Picked } from './drop-zone';
import { isTraining, type AppState } from '../app/state';

export interface ClassListElements {
  list: HTMLUListElement;
  status: HTMLElement;
  fileProblems: HTMLElement;
  fileProblemList: HTMLUListElement;
  clearProblems: HTMLButtonElement;
  libraryStatus: HTMLElement;
  clearAll: HTMLButtonElement;
}

export interface ClassListActions {
  removeClass(label: string): void;
  addToClass(picked: Picked): void;
  clearProblems(): void;
  clearAll(): void;
}

export function mountClassList(elements: ClassListElements, actions: ClassListActions) {
  elements.clearProblems.addEventListener('click', () => actions.clearProblems());
  elements.clearAll.addEventListener('click', () => {
    if (confirm('Remove every class and picture from this page and from this browser?')) actions.clearAll();
  });

  let shown = '';
  function renderRows(state: AppState): void {
    const busy = isTraining(state);
    // Rows are rebuilt only when they change, so a drag over a row is not cut short.
    const signature = JSON.stringify([state.summary.classes, busy]);
    if (signature === shown) return;
    shown = signature;
    const rows = state.summary.classes.map(({ label, count }) => {
      const remove = h(
        'button',
        { type: 'button', class: 'secondary', 'data-testid': 'remove-class', 'aria-label': `Remove class ${label}` },
        'Remove',
      );
      remove.disabled = busy;
      remove.addEventListener('click', () => actions.removeClass(label));
      const row = h(
        'li',
        { class: 'class-row', 'data-testid': 'class-row', 'data-label': label, title: `Drop pictures here to add them to "${label}"` },
        h('span', { class: 'class-label', 'data-testid': 'class-label' }, label),
        h('span', { class: 'class-count', 'data-testid': 'class-count', 'data-count': count }, `${count} image${count === 1 ? '' : 's'}`),
        remove,
      );
      acceptDrops(row, (data) => {
        void pickedFromDrop(data, label).then(actions.addToClass);
      });
      return row;
    });
    elements.list.replaceChildren(...rows);
  }

  return function render(state: AppState): void {
    renderRows(state);

    elements.status.textContent =
      state.adding > 0
        ? `Reading pictures… ${state.adding} to go`
        : state.summary.images > 0
          ? `${state.summary.images} images in ${state.summary.classes.length} classes`
          : '';
    elements.status.dataset.adding = String(state.adding);

    const { library } = state;
    const status = elements.libraryStatus;
    status.dataset.status = library.status;
    status.dataset.restored = String(library.restored);
    status.classList.toggle('problem', library.problem !== null);
    status.textContent = libraryText(state);
    status.hidden = status.textContent === '';

    elements.clearAll.hidden = state.classes.length === 0 && state.summary.classes.length === 0;
    elements.clearAll.disabled = isTraining(state) || state.adding > 0;

    elements.fileProblems.hidden = state.problems.length === 0;
    elements.fileProblemList.replaceChildren(
      ...state.problems.map(({ path, reason }) =>
        h('li', { 'data-testid': 'file-problem', 'data-path': path }, h('code', {}, path), `: ${reason}`),
      ),
    );
  };
}

function libraryText({ library }: AppState): string {
  if (library.problem !== null) {
    return library.partial
      ? `Pictures added from now on are kept in this tab only and will be gone after a reload: ${library.problem}.`
      : `Your pictures are kept in this tab only and will be gone after a reload: ${library.problem}.`;
  }
  if (library.restored > 0) {
    return `Restored ${library.restored} picture${library.restored === 1 ? '' : 's'} from your last visit.`;
  }
  return '';
}
