// "Add to a class" without files: paste a picture from the clipboard, or capture it from the
// webcam (press = one picture, hold = a burst). Both go through the same add path as dropped
// files, into the class named here (an existing one or a new one).

import type { AppState } from '../app/state';
import type { Picked } from './drop-zone';
import { Camera } from './camera';
import { h } from './dom';
import { messageOf } from '../app/context';

/** Pictures a second while the capture button is held. */
const BURST_PER_SECOND = 5;

export interface CaptureActions {
  addPicked(picked: Picked): void;
  reportError(text: string): void;
}

/** Builds the panel in `container`; returns its render function. */
export function mountCapture(container: HTMLElement, actions: CaptureActions) {
  const classInput = h('input', {
    type: 'text',
    list: 'capture-classes',
    'data-testid': 'capture-class',
    placeholder: 'class name',
    'aria-label': 'Class to add pasted or captured pictures to',
  });
  const classList = h('datalist', { id: 'capture-classes' });
  const toggle = h('button', { type: 'button', class: 'secondary', 'data-testid': 'camera-toggle' }, 'Start webcam');
  const video = h('video', { class: 'camera', 'data-testid': 'capture-video', hidden: true });
  const shoot = h(
    'button',
    { type: 'button', 'data-testid': 'capture-button', title: 'Press for one picture, hold for a burst' },
    'Hold to capture',
  );
  shoot.disabled = true;
  const count = h('span', { class: 'small', 'data-testid': 'capture-count', 'data-count': 0 });
  const status = h('p', { class: 'small muted', 'data-testid': 'capture-status', 'aria-live': 'polite' });
  container.append(
    h('label', { class: 'capture-class' }, 'Add to class ', classInput, classList),
    h('p', { class: 'small muted' }, 'Paste a picture (Ctrl+V / ⌘V) to add it to this class, or take pictures with the webcam.'),
    h('div', { class: 'capture-controls' }, toggle, shoot, count),
    video,
    status,
  );

  const camera = new Camera(video);
  let touched = false;
  let captured = 0;
  let pasted = 0;
  let burst: number | null = null;
  classInput.addEventListener('input', () => {
    touched = true;
  });

  /** The class to add to, or null (with the reason shown) when none is named. */
  function target(): string | null {
    const label = classInput.value.trim();
    if (!label) {
      status.textContent = 'Name the class to add the pictures to first.';
      classInput.focus();
      return null;
    }
    return label;
  }

  function add(label: string, file: File): void {
    actions.addPicked({ classes: [label], files: [{ label, path: `${label}/${file.name}`, file }], problems: [] });
  }

  const stamp = () => new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');

  async function captureOne(): Promise<void> {
    const label = target();
    if (!label) return stopBurst();
    captured += 1;
    const file = await camera.frame(`webcam-${stamp()}-${captured}.jpg`);
    if (!file) {
      captured -= 1;
      return;
    }
    add(label, file);
    count.dataset.count = String(captured);
    count.textContent = `${captured} captured`;
    status.textContent = `Captured into "${label}".`;
  }

  function startBurst(): void {
    if (burst !== null || !camera.running) return;
    void captureOne();
    burst = window.setInterval(() => void captureOne(), 1000 / BURST_PER_SECOND);
  }

  function stopBurst(): void {
    if (burst !== null) window.clearInterval(burst);
    burst = null;
  }

  shoot.addEventListener('pointerdown', (event) => {
    event.preventDefault();
    shoot.setPointerCapture(event.pointerId);
    startBurst();
  });
  for (const type of ['pointerup', 'pointercancel', 'lostpointercapture'] as const) shoot.addEventListener(type, stopBurst);
  shoot.addEventListener('keydown', (event) => {
    if ((event.key === ' ' || event.key === 'Enter') && !event.repeat) {
      event.preventDefault();
      startBurst();
    }
  });
  shoot.addEventListener('keyup', stopBurst);

  function stopCamera(): void {
    stopBurst();
    camera.stop();
    toggle.textContent = 'Start webcam';
    shoot.disabled = true;
    toggle.dataset.running = 'false';
  }

  toggle.addEventListener('click', () => {
    if (camera.running) {
      stopCamera();
      return;
    }
    camera.start().then(
      () => {
        toggle.textContent = 'Stop webcam';
        toggle.dataset.running = 'true';
        shoot.disabled = false;
        status.textContent = '';
      },
      (error: unknown) => {
        stopCamera();
        actions.reportError(`Webcam: ${messageOf(error)}.`);
      },
    );
  });
  // A camera left on in a hidden tab is a camera nobody is looking at.
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) stopCamera();
  });

  // Pictures pasted anywhere on the page (but not into a text field) join the class named here.
  document.addEventListener('paste', (event) => {
    const images = [...(event.clipboardData?.files ?? [])].filter((file) => file.type.startsWith('image/'));
    if (images.length === 0) return;
    event.preventDefault();
    const label = target();
    if (!label) return;
    for (const image of images) {
      pasted += 1;
      const extension = image.type.split('/')[1]?.replace('jpeg', 'jpg') ?? 'png';
      add(label, new File([image], `pasted-${stamp()}-${pasted}.${extension}`, { type: image.type }));
    }
    status.textContent = `Pasted ${images.length} picture${images.length === 1 ? '' : 's'} into "${label}".`;
  });

  let shownClasses = '';
  return function render(state: AppState): void {
    const signature = state.classes.join('\n');
    if (signature !== shownClasses) {
      shownClasses = signature;
      classList.replaceChildren(...state.classes.map((label) => h('option', { value: label })));
    }
    if (!touched && !classInput.value && state.classes.length > 0) classInput.value = state.classes[0];
  };
}
