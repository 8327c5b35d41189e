// Entry point: builds the app, mounts the views on the page's fixed elements, and re-renders
// them from the one state on every change.

import './style.css';
import './offline';
import { App } from './app/app';
import { mountAugmentPreview } from './views/augment-preview';
import { mountBackbone } from './views/backbone-view';
import { mountClassCards } from './views/class-cards';
import { byId, h } from './views/dom';
import { mountDownload } from './views/download';
import { mountDuplicates } from './views/duplicates-view';
import { mountCheckpoint } from './views/checkpoint-view';
import { mountDropZone, type Picked } from './views/drop-zone';
import { mountCapture } from './views/capture';
import { mountPauseButton } from './views/pause-button';
import { mountSampleProject } from './views/sample-project';
import { mountWebcamLive } from './views/webcam-live';
import { mountZipInput, readZips } from './views/zip-input';
import { mountEvaluationView } from './views/evaluation-view';
import { mountPredict } from './views/predict';
import { mountSuspectsView } from './views/suspects-view';
import { simulationOf, type ExportFormat } from './engine/protocol';
import { isBackendChoice, mountSettings } from './views/settings';
import { initialState, outsideProgress, whenChanged, type AppState } from './app/state';
import { mountTrainingView } from './views/training-view';
import { Projects } from './app/projects';
import { isProjectFile } from './app/project-file';
import { confirmReplace, mountProject } from './views/project-view';

const WEIGHTS_PATH = 'weights/efficientnet_lite0.safetensors';

// URL parameters: `?backend=auto|webgpu|cpu` picks the backend; `?workers=1` keeps the CPU
// engine on one core (it takes a second when the machine has one); `?simulate=...` makes the
// worker act out a failure (a lost WebGPU device, an engine crash; see `Simulation`), to try
// (and test) the page's recovery without a failing GPU.
const parameters = new URLSearchParams(location.search);
const requested = parameters.get('backend');
const app = new App(
  initialState(isBackendChoice(requested) ? requested : 'auto'),
  new URL(WEIGHTS_PATH, document.baseURI).href,
  simulationOf(parameters),
  parameters.get('workers') === '1' ? 1 : 2,
);

// A file dropped beside a drop zone must not make the browser navigate away from the page.
for (const type of ['dragover', 'drop'] as const) {
  window.addEventListener(type, (event) => event.preventDefault());
}

const addPicked = (picked: Picked) => app.addPicked(picked);
const reportError = (text: string) => app.reportError(text);
// A project file (.webtune, or a zip with a project manifest) dropped or picked as a zip opens as a project.
const openZips = (zips: File[]) => void openDropped(zips);
async function openDropped(files: File[]): Promise<void> {
  const found = await Promise.all(files.map(isProjectFile));
  const projectFiles = files.filter((_, i) => found[i]);
  const zips = files.filter((_, i) => !found[i]);
  if (zips.length > 0) void readZips(zips, byId('zip-status'), addPicked, reportError);
  if (projectFiles.length > 1) reportError(`Open one project at a time: ${projectFiles.slice(1).map((f) => f.name).join(', ')} not opened.`);
  if (projectFiles.length > 0) await projects.open(projectFiles[0], confirmReplace);
}
mountDropZone(byId('drop-zone'), byId<HTMLInputElement>('folder-input'), addPicked, openZips, reportError);
mountZipInput(byId<HTMLInputElement>('zip-input'), openZips);
const renderCapture = mountCapture(byId('capture'), { addPicked, reportError });
const renderSample = mountSampleProject(byId('sample-project'), new URL('sample/', document.baseURI), {
  addPicked,
  clearAll: () => app.clearAll(),
  reportError,
});

const renderClasses = mountClassCards(
  {
    list: byId<HTMLUListElement>('class-list'),
    addForm: byId<HTMLFormElement>('add-class-form'),
    addName: byId<HTMLInputElement>('new-class-name'),
    addError: byId('add-class-error'),
    status: byId('add-status'),
    fileProblems: byId('file-problems'),
    fileProblemList: byId<HTMLUListElement>('file-problem-list'),
    clearProblems: byId<HTMLButtonElement>('clear-problems'),
    libraryStatus: byId('library-status'),
    clearAll: byId<HTMLButtonElement>('clear-all'),
  },
  {
    addClass: (name) => app.addClassNamed(name),
    renameClass: (from, to) => app.renameClass(from, to),
    mergeClasses: (from, into) => app.mergeClasses(from, into),
    movePicture: (key, label) => app.movePicture(key, label),
    removePicture: (key) => app.removePicture(key),
    removeClass: (label) => void app.removeClass(label),
    addToClass: (picked) => app.addPicked(picked),
    clearProblems: () => app.clearProblems(),
    clearAll: () => void app.clearAll(),
  },
);

const renderDuplicates = mountDuplicates({ box: byId('duplicates'), list: byId<HTMLUListElement>('duplicate-list') });

const renderBackbone = mountBackbone(
  {
    select: byId<HTMLSelectElement>('backbone-select'),
    zone: byId('backbone-zone'),
    input: byId<HTMLInputElement>('backbone-input'),
    hint: byId('backbone-hint'),
    useDefault: byId<HTMLButtonElement>('backbone-default'),
    status: byId('backbone-status'),
    error: byId('backbone-error'),
    storage: byId('backbone-storage'),
  },
  (choice) => app.loadBackbone(choice),
);

const settings = mountSettings(
  {
    form: byId<HTMLFormElement>('settings'),
    epochs: byId<HTMLInputElement>('epochs'),
    learningRate: byId<HTMLInputElement>('learning-rate'),
    batchSize: byId<HTMLInputElement>('batch-size'),
    hiddenUnits: byId<HTMLInputElement>('hidden-units'),
    dropout: byId<HTMLInputElement>('dropout'),
    validationPercent: byId<HTMLInputElement>('validation-percent'),
    seed: byId<HTMLInputElement>('seed'),
    headPatience: byId<HTMLInputElement>('head-patience'),
    weightDecay: byId<HTMLInputElement>('weight-decay'),
    standardize: byId<HTMLInputElement>('standardize'),
    backend: byId<HTMLSelectElement>('backend'),
    backendLabel: byId('backend-label'),
    backendNote: byId('backend-note'),
    backendDetails: byId<HTMLDetailsElement>('backend-details'),
    backendDetail: byId('backend-detail'),
    recommendation: byId('recommendation'),
    plan: byId('train-plan'),
    advancedSettings: byId<HTMLDetailsElement>('advanced-settings'),
    unfreeze: byId<HTMLInputElement>('fine-tune-blocks'),
    unfreezeRange: byId('fine-tune-blocks-range'),
    recipeChoice: byId('recipe-choice'),
    useRecommendation: byId<HTMLButtonElement>('use-recommendation'),
    advanced: byId<HTMLDetailsElement>('advanced'),
    fineEpochs: byId<HTMLInputElement>('fine-epochs'),
    fineLearningRate: byId<HTMLInputElement>('fine-learning-rate'),
    backboneLrFactor: byId<HTMLInputElement>('backbone-lr-factor'),
    fineSteps: byId<HTMLInputElement>('fine-steps'),
    warmupEpochs: byId<HTMLInputElement>('warmup-epochs'),
    backboneRate: byId('backbone-rate'),
    labelSmoothing: byId<HTMLInputElement>('label-smoothing'),
    patience: byId<HTMLInputElement>('patience'),
    fineBatchSize: byId<HTMLInputElement>('fine-batch-size'),
    viewsPerImage: byId<HTMLInputElement>('views-per-image'),
    augment: byId<HTMLInputElement>('augment'),
    horizontalFlip: byId<HTMLInputElement>('horizontal-flip'),
    colorJitter: byId<HTMLInputElement>('color-jitter'),
    minCrop: byId<HTMLInputElement>('min-crop'),
  },
  (choice) => app.setBackend(choice),
);

const renderTraining = mountTrainingView(
  {
    train: byId<HTMLButtonElement>('train'),
    stop: byId<HTMLButtonElement>('stop'),
    problem: byId('train-problem'),
    status: byId('train-status'),
    eta: byId('train-eta'),
    progress: byId<HTMLProgressElement>('feature-progress'),
    progressText: byId('feature-progress-text'),
    cacheRow: byId('cache-row'),
    cacheProgress: byId<HTMLProgressElement>('cache-progress'),
    cacheProgressText: byId('cache-progress-text'),
    timings: byId('timings'),
    notes: byId<HTMLUListElement>('train-notes'),
    earlyStop: byId('early-stop'),
    chart: byId('chart'),
    log: byId<HTMLTableSectionElement>('epoch-log-body'),
    metrics: byId('metrics'),
  },
  {
    train: () => {
      const recipe = settings.read();
      if (recipe) void app.train(recipe);
    },
    stop: () => app.stopTraining(),
  },
);

const renderCheckpoint = mountCheckpoint(byId('checkpoint'), {
  continueTraining: () => void app.checkpoints.continueTraining(),
  discard: () => app.checkpoints.forget(),
});

const heatmap = (file: Blob, fileName: string) => app.gradCam(file, fileName);
const renderEvaluation = mountEvaluationView(byId('evaluation'), heatmap);
const renderSuspects = mountSuspectsView(byId('label-check'), {
  check: (limit) => app.checkLabels(limit),
  edit: (key, label) => (label === null ? app.removePicture(key) : app.movePicture(key, label)),
});

const projects = new Projects(
  app,
  {
    addPicked,
    clearAll: () => app.clearAll(),
    readRecipe: () => settings.read(),
    applyRecipe: (recipe) => settings.apply(recipe),
  },
  (status) => projectView.showStatus(status),
);
const projectView = mountProject(
  { save: byId<HTMLButtonElement>('save-project'), input: byId<HTMLInputElement>('project-input'), status: byId('project-status') },
  projects,
);


const renderAugmentPreview = mountAugmentPreview(
  { button: byId<HTMLButtonElement>('preview-augmentation'), note: byId('preview-note'), views: byId('preview-views') },
  () => ({ augmentation: settings.augmentation(), images: [...app.state.images.values()] }),
  (file, augmentation, count, seed) => app.augmentedViews(file, augmentation, count, seed),
);

const exportModel = (format: ExportFormat) => app.exportModel(format);
const renderDownloads = [
  mountDownload('safetensors', byId<HTMLButtonElement>('download'), byId('download-hint'), exportModel),
  mountDownload('onnx', byId<HTMLButtonElement>('download-onnx'), byId('download-onnx-hint'), exportModel),
];

const renderPredict = mountPredict(
  {
    zone: byId('predict-zone'),
    input: byId<HTMLInputElement>('predict-input'),
    list: byId<HTMLUListElement>('prediction-list'),
    hint: byId('predict-hint'),
  },
  (files) => void app.predict(files),
  heatmap,
);

const renderPause = mountPauseButton(byId<HTMLButtonElement>('pause'), (paused) => void app.setTrainingPaused(paused));
const renderWebcamLive = mountWebcamLive(byId('webcam-live'), {
  predict: (file) => app.predictFrame(file),
  heatmap: (file) => app.gradCam(file, file.name),
  reportError,
});

const errorList = byId<HTMLUListElement>('error-list');
function renderErrors(state: AppState): void {
  errorList.hidden = state.errors.length === 0;
  errorList.replaceChildren(
    ...state.errors.map(({ id, text }) => {
      const dismiss = h('button', { type: 'button', class: 'dismiss', 'aria-label': 'Dismiss' }, '×');
      dismiss.addEventListener('click', () => app.dismissError(id));
      return h('li', { 'data-testid': 'error' }, h('span', {}, text), dismiss);
    }),
  );
}

// Views that show the run's progress render on every change; the others only when what they
// read changed (see `outsideProgress`).
app.store.subscribe((state) => {
  renderTraining(state);
  renderEvaluation(state);
  renderPause(state);
});
app.store.subscribe(
  whenChanged(outsideProgress, (state) => {
    renderErrors(state);
    renderBackbone(state);
    settings.render(state);
    renderClasses(state);
    renderDuplicates(state);
    renderCheckpoint(state);
    renderSuspects(state);
    renderAugmentPreview(state);
    for (const render of renderDownloads) render(state);
    renderPredict(state);
    renderCapture(state);
    renderSample(state);
    renderWebcamLive(state);
    projectView.render(state);
  }),
);
app.start();
