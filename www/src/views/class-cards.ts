// The classes as cards: each card shows its class's name (renamed in place: Enter saves, Escape
// cancels), its count, its pictures as thumbnails, and the actions on it (add pictures, merge into
// another class, delete, with a confirmation). Pictures dropped onto a card join that class; each
// thumbnail can be moved to another class or deleted. Below the cards: "Add class" by name, the
// files that were not added, whether the pictures outlive a reload, and "Clear all".
//
// Thumbnails are rendered lazily so that thousands stay smooth: a card's pictures sit in a
// scrolling box that holds elements only for the rows in view (plus one on each side), and only
// while the card itself is on screen. Each shown picture is its scaled copy (views/thumbnail.ts),
// released as soon as it leaves the view.

import { h } from './dom';
import { showThumbnail } from './thumbnail';
import { acceptDrops, pickedFromDrop, pickedFromInput, type Picked } from './drop-zone';
import { inKeyOrder } from '../app/duplicates';
import { editsBlocked, isTraining, type AppState, type HeldImage } from '../app/state';

export interface ClassCardsElements {
  list: HTMLUListElement;
  addForm: HTMLFormElement;
  addName: HTMLInputElement;
  addError: HTMLElement;
  status: HTMLElement;
  fileProblems: HTMLElement;
  fileProblemList: HTMLUListElement;
  clearProblems: HTMLButtonElement;
  libraryStatus: HTMLElement;
  clearAll: HTMLButtonElement;
}

/** Edits resolve to why they were refused (to show on the card), or null when done. */
export interface ClassCardsActions {
  addClass(name: string): Promise<string | null>;
  renameClass(from: string, to: string): Promise<string | null>;
  mergeClasses(from: string, into: string): Promise<string | null>;
  removeClass(label: string): void;
  movePicture(key: number, label: string): Promise<string | null>;
  removePicture(key: number): Promise<string | null>;
  addToClass(picked: Picked): void;
  clearProblems(): void;
  clearAll(): void;
}

/** A thumbnail cell's size in pixels, gaps included: the picture, and its controls below it. */
const CELL_WIDTH = 104;
const CELL_HEIGHT = 132;
/** Rows rendered beyond the visible ones, above and below, so a scroll shows no gap. */
const OVERSCAN_ROWS = 1;

/** What a card needs from the page's state. */
interface CardData {
  label: string;
  count: number;
  images: HeldImage[];
  /** Every class, in the order shown. */
  labels: string[];
  /** Training runs: nothing can change. */
  training: boolean;
  /** Why renames, merges, moves and picture deletions wait (pictures being read), or null. */
  blocked: string | null;
}

/** What a thumbnail's controls depend on: the other classes, and whether edits are possible. */
function controlsKey(data: CardData | null): string {
  return data === null ? '' : JSON.stringify([data.labels, data.training, data.blocked !== null]);
}

function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

/** The thumbnails of one class: a scrolling box with elements for the visible rows only. */
class ThumbGrid {
  readonly element: HTMLDivElement;
  private readonly spacer: HTMLDivElement;
  private readonly empty: HTMLParagraphElement;
  private data: CardData | null = null;
  private cells = new Map<number, { cell: HTMLElement; release: () => void }>();
  /** What the rendered cells' controls were built for (the other classes, disabled or not). */
  private controlsFor = '';
  private onScreen = false;
  private columns = 1;
  /**
   * The box's size and scroll offset, noted by the resize observer and the scroll handler, so
   * that laying out never reads them: a read after another card's writes forces the browser to
   * lay out the page there and then, once per card and frame.
   */
  private width = 0;
  private height = 0;
  private scrollTop = 0;
  /** What the last layout was made of; the same again needs no work. */
  private laidOut: { images: HeldImage[]; controlsFor: string; width: number; height: number; scrollTop: number; onScreen: boolean } | null = null;
  private frame = 0;
  private readonly resize: ResizeObserver;
  /** After a picture left by keyboard, focus goes to the same control of the one now in its place. */
  private focusAfter: { index: number; testId: string } | null = null;

  constructor(private readonly hooks: { move(key: number, to: string): void; remove(key: number): void }) {
    this.spacer = h('div', { class: 'thumbs-spacer' });
    this.empty = h('p', { class: 'thumbs-empty muted small' }, 'No pictures yet: drop some here, or use "Add pictures".');
    this.element = h('div', { class: 'thumbs', 'data-testid': 'thumbs', role: 'list', tabindex: 0 }, this.spacer, this.empty);
    this.element.addEventListener(
      'scroll',
      () => {
        this.scrollTop = this.element.scrollTop;
        this.schedule();
      },
      { passive: true },
    );
    this.resize = new ResizeObserver(() => {
      // Read where the browser has just laid out: no extra layout.
      this.width = this.element.clientWidth;
      this.height = this.element.clientHeight;
      this.scrollTop = this.element.scrollTop;
      this.schedule();
    });
    this.resize.observe(this.element);
  }

  update(data: CardData): void {
    const before = this.data;
    this.data = data;
    if (before?.label !== data.label) this.element.setAttribute('aria-label', `Pictures of ${data.label}`);
    if (before?.images !== data.images || controlsKey(before) !== controlsKey(data)) this.schedule();
  }

  /** Whether the card is on screen (an IntersectionObserver says): off screen, nothing is rendered. */
  setOnScreen(onScreen: boolean): void {
    if (onScreen === this.onScreen) return;
    this.onScreen = onScreen;
    this.schedule();
  }

  /** How many thumbnails exist as elements now. */
  get renderedCount(): number {
    return this.cells.size;
  }

  destroy(): void {
    cancelAnimationFrame(this.frame);
    this.resize.disconnect();
    for (const key of [...this.cells.keys()]) this.drop(key);
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.layout();
    });
  }

  private layout(): void {
    const data = this.data;
    if (!data) return;
    const images = data.images;
    const { width, height, scrollTop, onScreen } = this;
    const controlsFor = controlsKey(data);
    const last = this.laidOut;
    if (
      this.focusAfter === null &&
      last?.images === images &&
      last.controlsFor === controlsFor &&
      last.width === width &&
      last.height === height &&
      last.scrollTop === scrollTop &&
      last.onScreen === onScreen
    ) {
      return;
    }
    this.laidOut = { images, controlsFor, width, height, scrollTop, onScreen };
    this.empty.hidden = images.length > 0;
    this.element.classList.toggle('empty', images.length === 0);
    this.columns = Math.max(1, Math.floor(width / CELL_WIDTH));
    const rows = Math.ceil(images.length / this.columns);
    const spacerHeight = `${rows * CELL_HEIGHT}px`;
    if (this.spacer.style.height !== spacerHeight) this.spacer.style.height = spacerHeight;

    if (controlsFor !== this.controlsFor) {
      this.controlsFor = controlsFor;
      for (const key of [...this.cells.keys()]) this.drop(key, true);
    }

    const wanted = new Map<number, number>();
    if (onScreen && width > 0) {
      const first = Math.max(0, Math.floor(scrollTop / CELL_HEIGHT) - OVERSCAN_ROWS);
      const lastRow = Math.min(rows - 1, Math.floor((scrollTop + height) / CELL_HEIGHT) + OVERSCAN_ROWS);
      for (let index = first * this.columns; index <= Math.min(images.length - 1, (lastRow + 1) * this.columns - 1); index++) {
        wanted.set(images[index].key, index);
      }
    }
    for (const key of [...this.cells.keys()]) {
      if (!wanted.has(key)) this.drop(key, true);
    }
    for (const [key, index] of wanted) {
      let entry = this.cells.get(key);
      if (!entry) {
        entry = this.cell(images[index], data);
        this.cells.set(key, entry);
        this.element.append(entry.cell);
      }
      entry.cell.dataset.index = String(index);
      entry.cell.style.transform = `translate(${(index % this.columns) * CELL_WIDTH}px, ${Math.floor(index / this.columns) * CELL_HEIGHT}px)`;
    }
    this.restoreFocus(images);
  }

  private restoreFocus(images: HeldImage[]): void {
    const after = this.focusAfter;
    if (!after) return;
    this.focusAfter = null;
    if (document.activeElement !== document.body && document.activeElement !== null) return;
    const index = Math.min(after.index, images.length - 1);
    const cell = index >= 0 ? this.cells.get(images[index].key)?.cell : undefined;
    const target = cell?.querySelector<HTMLElement>(`[data-testid="${after.testId}"]`);
    (target ?? this.element).focus();
  }

  private cell(image: HeldImage, data: CardData): { cell: HTMLElement; release: () => void } {
    const name = image.path;
    const move = h(
      'select',
      { class: 'thumb-move', 'data-testid': 'move-picture', 'aria-label': `Move picture ${name} to another class`, title: data.blocked ?? '' },
      h('option', { value: '' }, 'Move to…'),
      ...data.labels.filter((l) => l !== data.label).map((l) => h('option', { value: l }, l)),
    );
    move.disabled = data.training || data.blocked !== null || data.labels.length < 2;
    move.addEventListener('change', () => {
      if (move.value) this.hooks.move(image.key, move.value);
    });
    const remove = h(
      'button',
      { type: 'button', class: 'thumb-remove secondary', 'data-testid': 'remove-picture', 'aria-label': `Delete picture ${name}`, title: 'Delete this picture' },
      '✕',
    );
    remove.disabled = data.training || data.blocked !== null;
    remove.addEventListener('click', () => this.hooks.remove(image.key));
    const picture = h('img', { alt: name, decoding: 'async', 'data-testid': 'thumb-image', draggable: 'false' });
    const cell = h(
      'div',
      { class: 'thumb', role: 'listitem', 'data-testid': 'thumb', 'data-key': image.key, title: name },
      picture,
      h('div', { class: 'thumb-controls' }, move, remove),
    );
    return { cell, release: showThumbnail(picture, image) };
  }

  /** Removes a cell and releases its thumbnail; `keepFocus`: a focused control's place is remembered. */
  private drop(key: number, keepFocus = false): void {
    const entry = this.cells.get(key);
    if (!entry) return;
    const focused = document.activeElement;
    if (keepFocus && focused instanceof HTMLElement && entry.cell.contains(focused) && this.focusAfter === null) {
      this.focusAfter = { index: Number(entry.cell.dataset.index), testId: focused.dataset.testid ?? '' };
    }
    entry.cell.remove();
    entry.release();
    this.cells.delete(key);
  }
}

/** One class's card. A renamed class gets a new card (cards are keyed by label). */
class ClassCard {
  readonly element: HTMLLIElement;
  readonly grid: ThumbGrid;
  private readonly name: HTMLSpanElement;
  private readonly renameInput: HTMLInputElement;
  private readonly renameButton: HTMLButtonElement;
  private readonly count: HTMLSpanElement;
  private readonly fileInput: HTMLInputElement;
  private readonly mergeSelect: HTMLSelectElement;
  private readonly mergeButton: HTMLButtonElement;
  private readonly removeButton: HTMLButtonElement;
  private readonly confirmBox: HTMLDivElement;
  private readonly confirmText: HTMLSpanElement;
  private readonly confirmButton: HTMLButtonElement;
  private readonly error: HTMLParagraphElement;
  private data: CardData;
  private editing = false;
  private confirming: { action: () => void; focusBack: HTMLElement } | null = null;
  private mergeOptions = '';

  constructor(
    readonly label: string,
    data: CardData,
    private readonly actions: ClassCardsActions,
    /** Called with the new label after a rename, so the new card can take the focus. */
    private readonly renamed: (label: string) => void,
  ) {
    this.data = data;
    this.name = h('span', { class: 'class-label', 'data-testid': 'class-label' }, label);
    this.renameInput = h('input', {
      type: 'text',
      class: 'rename-input',
      'data-testid': 'rename-input',
      'aria-label': `New name for class ${label}`,
      autocomplete: 'off',
      spellcheck: 'false',
    });
    this.renameInput.hidden = true;
    this.count = h('span', { class: 'class-count', 'data-testid': 'class-count' });
    this.renameButton = h('button', { type: 'button', class: 'secondary', 'data-testid': 'rename-class', 'aria-label': `Rename class ${label}` }, 'Rename');
    this.fileInput = h('input', { type: 'file', multiple: true, accept: 'image/*', 'data-testid': 'card-file-input', 'aria-label': `Add pictures to class ${label}` });
    this.mergeSelect = h('select', { 'data-testid': 'merge-select', 'aria-label': `Merge class ${label} into` });
    this.mergeButton = h('button', { type: 'button', class: 'secondary', 'data-testid': 'merge-class' }, 'Merge');
    this.removeButton = h('button', { type: 'button', class: 'secondary danger', 'data-testid': 'remove-class', 'aria-label': `Delete class ${label}` }, 'Delete');
    this.confirmText = h('span', {});
    this.confirmButton = h('button', { type: 'button', 'data-testid': 'confirm-card-action' }, 'Yes');
    const cancel = h('button', { type: 'button', class: 'secondary', 'data-testid': 'cancel-card-action' }, 'Cancel');
    this.confirmBox = h('div', { class: 'card-confirm', role: 'group', 'data-testid': 'card-confirm' }, this.confirmText, this.confirmButton, cancel);
    this.confirmBox.hidden = true;
    this.error = h('p', { class: 'problem small', role: 'alert', 'data-testid': 'card-error' });
    this.error.hidden = true;
    this.grid = new ThumbGrid({
      move: (key, to) => void this.run(this.actions.movePicture(key, to)),
      remove: (key) => void this.run(this.actions.removePicture(key)),
    });

    this.element = h(
      'li',
      { class: 'class-card class-row', 'data-testid': 'class-row', 'data-label': label, title: `Drop pictures here to add them to "${label}"` },
      h('div', { class: 'card-head' }, h('h3', { class: 'class-name' }, this.name), this.renameInput, this.count),
      h(
        'div',
        { class: 'card-actions' },
        this.renameButton,
        h('label', { class: 'button secondary' }, 'Add pictures', this.fileInput),
        h('span', { class: 'merge' }, this.mergeSelect, this.mergeButton),
        this.removeButton,
      ),
      this.confirmBox,
      this.error,
      this.grid.element,
    );

    this.renameButton.addEventListener('click', () => this.startRename());
    this.name.addEventListener('dblclick', () => this.startRename());
    this.renameInput.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        void this.finishRename(true);
      } else if (event.key === 'Escape') {
        event.preventDefault();
        void this.finishRename(false);
      }
    });
    this.renameInput.addEventListener('blur', () => void this.finishRename(true));
    this.fileInput.addEventListener('change', () => {
      if (this.fileInput.files && this.fileInput.files.length > 0) this.actions.addToClass(pickedFromInput(this.fileInput.files, label));
      this.fileInput.value = '';
    });
    this.mergeButton.addEventListener('click', () => {
      const into = this.mergeSelect.value;
      if (!into) {
        this.showError('Choose the class to merge into first.');
        return;
      }
      this.confirm(`Merge "${label}" (${plural(this.data.count, 'picture')}) into "${into}"?`, 'Merge', this.mergeButton, () => {
        void this.run(this.actions.mergeClasses(label, into));
      });
    });
    this.removeButton.addEventListener('click', () => {
      this.confirm(`Delete class "${label}" and its ${plural(this.data.count, 'picture')}?`, 'Delete', this.removeButton, () =>
        this.actions.removeClass(label),
      );
    });
    this.confirmButton.addEventListener('click', () => {
      const confirming = this.confirming;
      // The focus goes back to the card's button; if the card goes (a delete, a merge), the
      // list hands it on.
      this.closeConfirm(true);
      confirming?.action();
    });
    cancel.addEventListener('click', () => this.closeConfirm(true));
    this.confirmBox.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') this.closeConfirm(true);
    });
    acceptDrops(this.element, (dropped) => {
      void pickedFromDrop(dropped, label).then((picked) => this.actions.addToClass(picked));
    });
    this.update(data);
  }

  update(data: CardData): void {
    this.data = data;
    const { count, training, blocked } = data;
    setText(this.count, plural(count, 'image'));
    this.count.dataset.count = String(count);
    const others = data.labels.filter((l) => l !== this.label);
    const options = JSON.stringify(others);
    if (options !== this.mergeOptions) {
      this.mergeOptions = options;
      this.mergeSelect.replaceChildren(
        h('option', { value: '' }, others.length ? 'Merge into…' : 'No other class'),
        ...others.map((l) => h('option', { value: l }, l)),
      );
    }
    this.renameButton.disabled = training || blocked !== null;
    this.mergeSelect.disabled = training || blocked !== null || others.length === 0;
    this.mergeButton.disabled = this.mergeSelect.disabled;
    this.removeButton.disabled = training;
    this.renameButton.title = this.mergeButton.title = blocked ?? '';
    if (training && this.confirming) this.closeConfirm(false);
    this.grid.update(data);
  }

  focusName(): void {
    this.renameButton.focus();
  }

  destroy(): void {
    this.grid.destroy();
    this.element.remove();
  }

  private startRename(): void {
    if (this.renameButton.disabled || this.editing) return;
    this.editing = true;
    this.renameInput.value = this.label;
    this.name.hidden = true;
    this.renameInput.hidden = false;
    this.renameInput.focus();
    this.renameInput.select();
  }

  private async finishRename(save: boolean): Promise<void> {
    if (!this.editing) return;
    this.editing = false;
    const to = this.renameInput.value;
    if (!save || to.trim() === this.label) {
      this.closeRename();
      this.renameButton.focus();
      return;
    }
    this.renameInput.disabled = true;
    const problem = await this.actions.renameClass(this.label, to);
    this.renameInput.disabled = false;
    if (problem) {
      // Stay in the field with the refused name, saying why.
      this.editing = true;
      this.showError(problem);
      this.renameInput.focus();
      return;
    }
    this.closeRename();
    this.renamed(to.trim());
  }

  private closeRename(): void {
    this.renameInput.hidden = true;
    this.name.hidden = false;
    this.error.hidden = true;
  }

  private confirm(text: string, yes: string, focusBack: HTMLElement, action: () => void): void {
    this.confirming = { action, focusBack };
    this.confirmText.textContent = text;
    this.confirmButton.textContent = yes;
    this.confirmBox.hidden = false;
    this.confirmButton.focus();
  }

  private closeConfirm(refocus: boolean): void {
    const focusBack = this.confirming?.focusBack;
    this.confirming = null;
    this.confirmBox.hidden = true;
    if (refocus) focusBack?.focus();
  }

  private async run(edit: Promise<string | null>): Promise<void> {
    const problem = await edit;
    if (problem) this.showError(problem);
    else this.error.hidden = true;
  }

  private showError(text: string): void {
    this.error.textContent = text;
    this.error.hidden = false;
  }
}

export function mountClassCards(elements: ClassCardsElements, actions: ClassCardsActions) {
  const cards = new Map<string, ClassCard>();
  let focusLabel: string | null = null;
  const onScreen = new IntersectionObserver(
    (entries) => {
      for (const entry of entries) {
        const label = (entry.target as HTMLElement).dataset.label;
        const card = label === undefined ? undefined : cards.get(label);
        if (card && card.element === entry.target) card.grid.setOnScreen(entry.isIntersecting);
      }
    },
    { rootMargin: '200px 0px' },
  );

  elements.clearProblems.addEventListener('click', () => actions.clearProblems());
  elements.clearAll.addEventListener('click', () => {
    if (confirm('Remove every class and picture from this page and from this browser?')) actions.clearAll();
  });
  elements.addForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const name = elements.addName.value;
    void actions.addClass(name).then((problem) => {
      elements.addError.textContent = problem ?? '';
      elements.addError.hidden = problem === null;
      if (problem === null) {
        elements.addName.value = '';
        focusLabel = null;
      }
    });
  });

  // Pictures grouped by class, recomputed only when the pictures change. A class whose pictures
  // are the same as before keeps its array, so its card has nothing to lay out again.
  let grouped: { version: number; byLabel: Map<string, HeldImage[]> } | null = null;
  function byLabel(state: AppState): Map<string, HeldImage[]> {
    if (grouped?.version === state.picturesVersion) return grouped.byLabel;
    const groups = new Map<string, HeldImage[]>();
    for (const image of inKeyOrder(state.images)) {
      let group = groups.get(image.label);
      if (!group) groups.set(image.label, (group = []));
      group.push(image);
    }
    const before = grouped?.byLabel;
    for (const [label, group] of groups) {
      const old = before?.get(label);
      if (old && sameImages(old, group)) groups.set(label, old);
    }
    grouped = { version: state.picturesVersion, byLabel: groups };
    return groups;
  }

  function renderCards(state: AppState): void {
    const training = isTraining(state);
    const blocked = training ? null : editsBlocked(state);
    const labels = state.summary.classes.map((c) => c.label);
    const groups = byLabel(state);
    const shown = new Set(labels);
    let lostFocusAt: number | null = null;
    for (const [label, card] of cards) {
      if (shown.has(label)) continue;
      if (card.element.contains(document.activeElement)) lostFocusAt = [...elements.list.children].indexOf(card.element);
      onScreen.unobserve(card.element);
      card.destroy();
      cards.delete(label);
    }
    let previous: Element | null = null;
    for (const { label, count } of state.summary.classes) {
      const data: CardData = { label, count, images: groups.get(label) ?? [], labels, training, blocked };
      let card = cards.get(label);
      if (card) {
        card.update(data);
      } else {
        card = new ClassCard(label, data, actions, (renamedTo) => {
          focusLabel = renamedTo;
        });
        cards.set(label, card);
        onScreen.observe(card.element);
      }
      const expected: Element | null = previous ? previous.nextElementSibling : elements.list.firstElementChild;
      if (expected !== card.element) elements.list.insertBefore(card.element, expected);
      previous = card.element;
    }
    if (focusLabel !== null && cards.has(focusLabel)) {
      cards.get(focusLabel)?.focusName();
      focusLabel = null;
    } else if (lostFocusAt !== null) {
      // A card left with the keyboard's focus: on to the card now in its place, or "New class".
      const next = elements.list.children[Math.min(lostFocusAt, elements.list.children.length - 1)] as HTMLElement | undefined;
      const label = next?.dataset.label;
      const card = label === undefined ? undefined : cards.get(label);
      if (card) card.focusName();
      else elements.addName.focus();
    }
  }

  let shownProblems: AppState['problems'] | null = null;
  return function render(state: AppState): void {
    renderCards(state);

    elements.addForm.querySelector('button')?.toggleAttribute('disabled', isTraining(state));

    setText(
      elements.status,
      state.adding > 0
        ? `Reading pictures… ${state.adding} to go`
        : state.summary.images > 0
          ? `${state.summary.images} images in ${state.summary.classes.length} classes`
          : '',
    );
    elements.status.dataset.adding = String(state.adding);

    const { library } = state;
    const status = elements.libraryStatus;
    status.dataset.status = library.status;
    status.dataset.restored = String(library.restored);
    status.dataset.storing = String(library.storing);
    status.classList.toggle('problem', library.problem !== null);
    setText(status, libraryText(state));
    status.hidden = status.textContent === '';

    elements.clearAll.hidden = state.classes.length === 0 && state.summary.classes.length === 0;
    elements.clearAll.disabled = isTraining(state) || state.adding > 0;

    elements.fileProblems.hidden = state.problems.length === 0;
    if (state.problems === shownProblems) return;
    shownProblems = state.problems;
    elements.fileProblemList.replaceChildren(
      ...state.problems.map(({ path, reason }) =>
        h('li', { 'data-testid': 'file-problem', 'data-path': path }, h('code', {}, path), `: ${reason}`),
      ),
    );
  };
}

/**
 * Sets an element's text only when it differs: even the same text replaces the text node, and
 * this runs for every card on every frame while pictures are added.
 */
function setText(element: HTMLElement, text: string): void {
  if (element.textContent !== text) element.textContent = text;
}

function sameImages(a: HeldImage[], b: HeldImage[]): boolean {
  return a.length === b.length && a.every((image, i) => image === b[i]);
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
