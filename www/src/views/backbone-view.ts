// The backbone chooser: the architecture, a drop zone / file picker for the user's weights, and
// what the engine has loaded (file, import time, how many units phase 2 can unfreeze) or why it
// refused a file.

import { BACKBONES, backboneInfo, isBackboneName, optionLabel } from '../app/backbones';
import { acceptDrops } from './drop-zone';
import { formatBytes, formatSeconds, h } from './dom';
import { isTraining, type AppState, type BackboneChoice } from '../app/state';

export interface BackboneElements {
  select: HTMLSelectElement;
  zone: HTMLElement;
  input: HTMLInputElement;
  hint: HTMLElement;
  useDefault: HTMLButtonElement;
  status: HTMLElement;
  error: HTMLElement;
  storage: HTMLElement;
}

export function mountBackbone(elements: BackboneElements, load: (choice: BackboneChoice) => void) {
  elements.select.replaceChildren(...BACKBONES.map((info) => h('option', { value: info.name }, optionLabel(info))));
  let state: AppState | null = null;

  const selected = () => (isBackboneName(elements.select.value) ? elements.select.value : BACKBONES[0].name);
  const disabled = (s: AppState) => isTraining(s) || s.backbone.loading || s.engine.status === 'starting';

  function loadFile(file: File | undefined): void {
    if (!file || !state || disabled(state)) return;
    load({ name: selected(), file });
  }

  elements.select.addEventListener('change', () => {
    const info = backboneInfo(selected());
    const running = state?.backbone.running;
    // The bundled weights load at once; other architectures wait for their file.
    if (info.bundled && (running?.name !== info.name || running.file !== null)) load({ name: info.name, file: null });
    else if (state) render(state);
  });
  elements.input.addEventListener('change', () => {
    loadFile(elements.input.files?.[0]);
    elements.input.value = '';
  });
  acceptDrops(elements.zone, (data) => loadFile(data.files[0]));
  elements.useDefault.addEventListener('click', () => load({ name: BACKBONES[0].name, file: null }));

  let shown: BackboneChoice | null = null;
  function render(next: AppState): void {
    state = next;
    const { backbone, engine } = next;
    // The select shows the backbone in use (or starting) whenever that changes; in between it is
    // the user's, so a refused file leaves the architecture they chose selected.
    const current = backbone.running ?? backbone.wanted;
    if (current !== shown) {
      shown = current;
      elements.select.value = current.name;
    }
    const off = disabled(next);
    elements.select.disabled = off;
    elements.input.disabled = off;
    elements.zone.classList.toggle('disabled', off);

    const info = backboneInfo(selected());
    elements.hint.replaceChildren(
      ...(info.howToGet
        ? [
            `${info.label} needs a weights file (torchvision's state dict, .pth or .safetensors). In Python:`,
            h('code', {}, info.howToGet),
            `Then drop ${info.name}.pth here.`,
          ]
        : [`The page brings ${info.label}'s weights; or drop your own ${info.label} .pth, .pt or .safetensors file here.`]),
    );
    const running = backbone.running;
    elements.useDefault.hidden = !running || (running.file === null && running.name === BACKBONES[0].name) || off;

    const status = elements.status;
    status.dataset.status = backbone.loading ? 'loading' : engine.status;
    status.dataset.name = running?.name ?? '';
    status.dataset.file = running?.file?.name ?? '';
    status.dataset.restored = String(backbone.restored && running !== null);
    status.dataset.maxUnfreeze = engine.status === 'ready' ? String(engine.maxUnfreeze ?? '') : '';
    // The architecture the engine says it built (`Trainer.backboneName`), for tests to check.
    status.dataset.engineName = engine.status === 'ready' ? (engine.backboneName ?? '') : '';
    if (backbone.loading) {
      const wanted = backbone.wanted;
      status.textContent =
        `Loading ${backboneInfo(wanted.name).label} from ${wanted.file?.name ?? 'the bundled weights'}… ` +
        'The backbone in use stays until it is ready.';
    } else if (engine.status === 'ready' && running) {
      const source = running.file ? running.file.name : 'the bundled weights';
      const size = backbone.weightsBytes === null ? '' : ` (${formatBytes(backbone.weightsBytes)})`;
      status.replaceChildren(
        'In use: ',
        h('strong', {}, backboneInfo(running.name).label),
        ` from ${source}${size}, imported in ${formatSeconds(backbone.importMs)}`,
        backbone.restored ? ', restored from your last visit' : '',
        `. Phase 2 can unfreeze up to ${engine.maxUnfreeze} units: ${engine.unitsDescription}.`,
      );
    } else if (engine.status === 'starting') {
      status.textContent = `Starting ${backboneInfo(backbone.wanted.name).label}…`;
    } else {
      status.textContent = 'No backbone loaded: the training engine is not running.';
    }

    elements.error.textContent = backbone.error ?? '';
    elements.error.hidden = !backbone.error;
    // What reading the refused file cost the engine that tried it (the browser tests read it).
    elements.error.dataset.memoryBytes = backbone.refusedMemoryBytes === null ? '' : String(backbone.refusedMemoryBytes);
    elements.storage.textContent = backbone.storageProblem ?? '';
    elements.storage.hidden = !backbone.storageProblem;
  }

  return render;
}
