// Generated from the engine's Rust types by `cargo test` (src/boundary.rs): do not edit.
// `UPDATE_GENERATED=1 cargo test --lib boundary` rewrites it after a change on the Rust side.

export type Augmentation = { 
/**
 * Off: every view is the evaluation center crop.
 */
enabled: boolean, 
/**
 * Smallest share of the image's area a random crop covers (default 0.5; 1 keeps it whole).
 * Milder than ImageNet training's 0.08: small datasets of whole objects lose the object
 * in tighter crops.
 */
minCropArea: number, 
/**
 * Mirror left-right half of the time (default on; turn off when left and right matter,
 * e.g. text or arrows).
 */
horizontalFlip: boolean, 
/**
 * Largest relative change of brightness, contrast and saturation (default 0.1).
 */
colorJitter: number, };

export type BackendKind = "cpu" | "webgpu";

export type Bound = { value: number, 
/**
 * Whether `value` itself is allowed.
 */
inclusive: boolean, };

export type ClassSummary = { label: string, count: number, };

export type ClassMetrics = { label: string, precision: number | null, recall: number | null, 
/**
 * Validation images of this class.
 */
support: number, };

export type DatasetSummary = { classes: Array<ClassSummary>, images: number, trainable: boolean, 
/**
 * Why training is not possible yet, in words for the user.
 */
problem: string | null, };

export type DuplicateGroup = { kind: DuplicateKind, 
/**
 * The lowest feature cosine similarity between two of its pictures.
 */
similarity: number, 
/**
 * The copies carry different labels: at least one of them is wrong.
 */
mixedLabels: boolean, pictures: Array<DuplicatePicture>, };

export type DuplicateKind = "exact" | "near";

export type DuplicatePicture = { imageId: number, fileName: string, label: string, };

export type EngineInfo = { 
/**
 * The backend in use.
 */
backend: BackendKind, 
/**
 * Why "auto" fell back to the CPU, in the engine's words, when it did.
 */
backendNote: string | null, 
/**
 * The architecture, e.g. `efficientnet_lite0`.
 */
backbone: string, 
/**
 * Side of the square the backbone sees, in pixels.
 */
inputSize: number, 
/**
 * Backbone units phase 2 can unfreeze (the `unfreeze` setting's upper bound), and what one is.
 */
maxUnfreeze: number, unitsDescription: string, 
/**
 * The classes of the webtune export the backbone came from, when it did.
 */
continuesFrom: Array<string> | null, };

export type EpochReport = { 
/**
 * 1-based.
 */
epoch: number, 
/**
 * Most epochs; early stopping may end the run before.
 */
epochs: number, trainLoss: number, trainAccuracy: number, 
/**
 * `None` when the validation split is empty.
 */
valLoss: number | null, valAccuracy: number | null, 
/**
 * Wilson 95 % interval of `val_accuracy` (`valAccuracyInterval: [lo, hi]`): on 4 pictures a
 * measured 100 % only says "somewhere above 51 %".
 */
valAccuracyInterval: [number, number] | null, 
/**
 * The epoch whose weights are kept (lowest validation loss so far), with its validation
 * accuracy: after early stopping this, not the last epoch, is the model. `None` without a
 * validation split (the last epoch is kept). In phase 2, 0 is the phase-1 model, kept when
 * the best fine-tuning epoch classifies fewer validation pictures.
 */
bestEpoch: number | null, bestValAccuracy: number | null, 
/**
 * True after the last epoch, or when early stopping ended the run.
 */
done: boolean, };

export type ErrorInfo = { kind: ErrorKind, 
/**
 * The whole message, file name included.
 */
message: string, 
/**
 * The message without the file name.
 */
reason: string, file: string | null, setting: string | null, };

export type ErrorKind = "badFile" | "weights" | "dataset" | "badSettings" | "training" | "deviceLost" | "outOfMemory" | "internal";

export type Evaluation = { images: number, loss: number, accuracy: number, 
/**
 * Wilson 95 % interval of `accuracy` over `images` (see [`wilson_interval`]).
 */
accuracyInterval: [number, number], classes: Array<ClassMetrics>, 
/**
 * `confusion[true][predicted]` counts.
 */
confusion: Array<Array<number>>, misclassified: Array<Misclassified>, };

export type Event = { "type": "features", done: number, total: number, } | { "type": "split", train: number, val: number, unfreeze: number, notes: Array<string>, } | { "type": "epoch", phase: Phase, report: EpochReport, } | { "type": "cache", done: number, total: number, bytes: number, note: string | null, } | { "type": "evaluated", evaluation: Evaluation, } | { "type": "finished", outcome: Outcome, };

export type FineTuneOptions = { 
/**
 * Most epochs; early stopping usually ends sooner (default 10). Fewer when `steps` fills
 * first: [`planned_epochs`](Self::planned_epochs).
 */
epochs: number, 
/**
 * Step budget (default 1 000; 0: none): with many training views, the epochs are cut to about
 * this many optimiser steps, never below [`MIN_BUDGET_EPOCHS`]. How far phase 2 moves the
 * tail depends on the steps taken more than on how often each view repeats (measured on
 * digits: README, Quality).
 */
steps: number, 
/**
 * Peak learning rate of the head (default 1e-3); the backbone tail gets
 * `learning_rate * backbone_lr_factor`.
 */
learningRate: number, 
/**
 * Discriminative rate for the unfrozen backbone blocks (default 0.1).
 */
backboneLrFactor: number, 
/**
 * Epochs of linear warmup before the cosine decay (default 1).
 */
warmupEpochs: number, 
/**
 * Label smoothing of the cross-entropy (default 0.1).
 */
labelSmoothing: number, 
/**
 * Epochs without a better validation loss before stopping (default 3).
 */
patience: number, 
/**
 * Views per step (default 16).
 */
batchSize: number, };

export type GradCam = { 
/**
 * The class explained: the predicted one unless another was asked for.
 */
label: string, classIndex: number, 
/**
 * The model's probability of that class for this picture.
 */
probability: number, 
/**
 * `ReLU(Σ_k w_k A_k)` on the last convolution's grid, row-major `[map_height, map_width]`,
 * unnormalised.
 */
map: Array<number>, mapWidth: number, mapHeight: number, 
/**
 * Side of the input crop the map explains.
 */
size: number, };

export type HeadOptions = { 
/**
 * Most passes over the training split. Default 300: on cached features an epoch costs
 * milliseconds, and early stopping usually ends the run well before (digits, 300 pictures:
 * 20 epochs reached 0.66 validation accuracy, training to convergence 0.86).
 */
epochs: number, 
/**
 * Adam learning rate on standardised features. Default 1e-3.
 */
learningRate: number, 
/**
 * Feature vectors per step. Default 32.
 */
batchSize: number, 
/**
 * Hidden layer width; 0 (default) trains a single linear layer.
 */
hiddenUnits: number, 
/**
 * Dropout before each linear layer. Default 0.2.
 */
dropout: number, 
/**
 * Share of each class held out for validation. Default 0.15.
 */
valFraction: number, 
/**
 * Seed for the split, the head's initial weights, augmentation and the batch order of
 * both phases. Default 42.
 */
seed: number, 
/**
 * Epochs without a lower validation loss before training stops and the best epoch's head is
 * restored; 0 runs every epoch. Default 20: epochs are cheap, and the validation loss of a
 * small split is noisy, so a short patience would stop on a bump. Without a validation split
 * every epoch runs.
 */
patience: number, 
/**
 * L2 penalty `weight_decay / 2 · ‖W‖²` on the linear weights (not biases), in standardised
 * feature units, added to the mean cross-entropy (scikit-learn's `C` is `1 / (weight_decay · n)`).
 * Default 1e-2: on digits (300 pictures) it gave the lowest validation loss of 0, 1e-3,
 * 3e-3, 1e-2, 3e-2 and 1e-1, and it keeps the weights bounded when training runs long
 * without a validation split to stop it.
 */
weightDecay: number, 
/**
 * Standardise each feature dimension with the training split's mean and standard deviation.
 * Default true: pooled backbone features differ in scale by orders of magnitude between
 * dimensions, which makes a single learning rate too slow for some and too fast for others.
 */
standardize: boolean, };

export type Misclassified = { imageId: number, fileName: string, trueLabel: string, predictedLabel: string, 
/**
 * Probability the model gave its (wrong) prediction.
 */
probability: number, };

export type Outcome = { 
/**
 * Stopped by the user before the recipe's end.
 */
stopped: boolean, 
/**
 * There is a model to export and try (at least one head epoch finished).
 */
hasModel: boolean, 
/**
 * Backbone units the kept model's phase 2 fine-tuned; 0 when only the head trained, or
 * when the phase-1 model was kept (then `best_epoch` is 0).
 */
fineTuned: number, 
/**
 * Phase 2 ended before its last epoch because the validation loss stopped improving.
 */
stoppedEarly: boolean, 
/**
 * The phase-2 epoch (1-based) whose weights were kept, when phase 2 ran with a validation
 * split; 0: the phase-1 model was kept, the best fine-tuning epoch being less accurate on
 * validation.
 */
bestEpoch: number | null, };

export type Overview = { dataset: DatasetSummary, recommendation: Recommendation, stage: Stage, };

export type Phase = "head" | "fine";

export type Prediction = { label: string, probability: number, };

export type Recipe = { head: HeadOptions, 
/**
 * Backbone units to fine-tune after the head, from the end; 0 trains the head only.
 * `None` (the default) takes the recommendation for the data ([`crate::train::recommend`]).
 */
unfreeze: number | null, fineTune: FineTuneOptions, augmentation: Augmentation, 
/**
 * Views cached per training picture for phase 2: the center view, then augmented ones
 * (default 2; only the center view when augmentation is off).
 */
viewsPerImage: number, };

export type Recommendation = { 
/**
 * Backbone units to unfreeze in phase 2; 0 means stop after the head (feature extraction).
 */
unfreeze: number, 
/**
 * Why, in a sentence for the user.
 */
reason: string, };

export type Setting = { 
/**
 * Path of the field in the recipe's JSON, e.g. `head.learningRate`.
 */
key: string, label: string, 
/**
 * One line for the user: what it does, when to change it.
 */
help: string, kind: SettingKind, min: Bound | null, 
/**
 * `None` with `max_is_units`: the backbone's number of units; otherwise unbounded.
 */
max: Bound | null, 
/**
 * The upper bound is the backbone's unit count (known once a backbone is loaded).
 */
maxIsUnits: boolean, 
/**
 * Shown multiplied by this (100 for shares shown as percentages).
 */
displayScale: number, 
/**
 * Tucked away under "Advanced" on the page.
 */
advanced: boolean, };

export type SettingKind = "integer" | "number" | "boolean";

export type Stage = "idle" | "features" | "head" | "caching" | "fineTuning" | "evaluating" | "done";

export type Started = { unfreeze: number, 
/**
 * Pictures whose features are still to compute.
 */
pendingFeatures: number, };

export type Suspect = { imageId: number, fileName: string, 
/**
 * The label it was given.
 */
label: string, 
/**
 * The class the model trained without it predicts.
 */
suggested: string, 
/**
 * Held-out probabilities of the given label and of the suggested class.
 */
labelProbability: number, suggestedProbability: number, 
/**
 * `−ln(label_probability)`, the held-out loss of the given label: the ranking, highest first.
 */
score: number, 
/**
 * Share of its nearest pictures (feature cosine similarity) that carry the suggested class.
 */
neighboursSuggested: number, };

export type SuspectReport = { 
/**
 * Pictures whose held-out prediction is not their label, most suspicious first.
 */
suspects: Array<Suspect>, 
/**
 * Pictures checked, and how many folds they were split into.
 */
checked: number, folds: number, };

/** Every setting of the recipe with its range: the engine refuses exactly what lies outside. */
export const SETTINGS: Setting[] = [
  {
    "advanced": false,
    "displayScale": 1.0,
    "help": "After the head, fine-tune this many backbone units from the end (0: head only). Empty: the recommendation for your data.",
    "key": "unfreeze",
    "kind": "integer",
    "label": "Backbone blocks to fine-tune",
    "max": null,
    "maxIsUnits": true,
    "min": {
      "inclusive": true,
      "value": 0.0
    }
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "Most passes over the training pictures in phase 1.",
    "key": "head.epochs",
    "kind": "integer",
    "label": "Head epochs",
    "max": {
      "inclusive": true,
      "value": 10000.0
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": true,
      "value": 1.0
    }
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "Adam's step size for the new head.",
    "key": "head.learningRate",
    "kind": "number",
    "label": "Head learning rate",
    "max": {
      "inclusive": true,
      "value": 1.0
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": false,
      "value": 0.0
    }
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "Pictures per step in phase 1 (clamped to the training split).",
    "key": "head.batchSize",
    "kind": "integer",
    "label": "Head batch size",
    "max": {
      "inclusive": true,
      "value": 4096.0
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": true,
      "value": 1.0
    }
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "A hidden layer in the head (0: a single linear layer).",
    "key": "head.hiddenUnits",
    "kind": "integer",
    "label": "Hidden units",
    "max": {
      "inclusive": true,
      "value": 4096.0
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": true,
      "value": 0.0
    }
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "Share of features dropped before each linear layer while training.",
    "key": "head.dropout",
    "kind": "number",
    "label": "Dropout",
    "max": {
      "inclusive": false,
      "value": 1.0
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": true,
      "value": 0.0
    }
  },
  {
    "advanced": true,
    "displayScale": 100.0,
    "help": "Share of each class held out to measure the model honestly (0: no validation).",
    "key": "head.valFraction",
    "kind": "number",
    "label": "Validation share",
    "max": {
      "inclusive": true,
      "value": 0.5
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": true,
      "value": 0.0
    }
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "Same seed, same pictures and settings: the same model.",
    "key": "head.seed",
    "kind": "integer",
    "label": "Seed",
    "max": {
      "inclusive": true,
      "value": 4294967295.0
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": true,
      "value": 0.0
    }
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "Head epochs without a better validation loss before phase 1 stops (the best epoch is kept); 0 runs every epoch.",
    "key": "head.patience",
    "kind": "integer",
    "label": "Head patience",
    "max": {
      "inclusive": true,
      "value": 10000.0
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": true,
      "value": 0.0
    }
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "L2 penalty on the head's weights; keeps it from over-fitting small sets.",
    "key": "head.weightDecay",
    "kind": "number",
    "label": "Weight decay",
    "max": {
      "inclusive": true,
      "value": 1.0
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": true,
      "value": 0.0
    }
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "Scale each feature by its training-split statistics, so one learning rate fits every dataset.",
    "key": "head.standardize",
    "kind": "boolean",
    "label": "Standardise features",
    "max": null,
    "maxIsUnits": false,
    "min": null
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "Most epochs of phase 2 (fewer when the step budget fills first); early stopping usually ends sooner.",
    "key": "fineTune.epochs",
    "kind": "integer",
    "label": "Fine-tune epochs",
    "max": {
      "inclusive": true,
      "value": 1000.0
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": true,
      "value": 1.0
    }
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "With many pictures, phase 2 runs fewer epochs (at least 3) to take about this many steps; 0: no budget.",
    "key": "fineTune.steps",
    "kind": "integer",
    "label": "Step budget",
    "max": {
      "inclusive": true,
      "value": 1000000.0
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": true,
      "value": 0.0
    }
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "The head's peak rate in phase 2.",
    "key": "fineTune.learningRate",
    "kind": "number",
    "label": "Fine-tune learning rate",
    "max": {
      "inclusive": true,
      "value": 1.0
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": false,
      "value": 0.0
    }
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "The unfrozen blocks learn at the head's rate times this.",
    "key": "fineTune.backboneLrFactor",
    "kind": "number",
    "label": "Backbone rate factor",
    "max": {
      "inclusive": true,
      "value": 1.0
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": false,
      "value": 0.0
    }
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "Epochs of linear warmup before the cosine decay.",
    "key": "fineTune.warmupEpochs",
    "kind": "integer",
    "label": "Warmup epochs",
    "max": {
      "inclusive": true,
      "value": 100.0
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": true,
      "value": 0.0
    }
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "Softens the targets; helps against over-confident models.",
    "key": "fineTune.labelSmoothing",
    "kind": "number",
    "label": "Label smoothing",
    "max": {
      "inclusive": false,
      "value": 0.5
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": true,
      "value": 0.0
    }
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "Epochs without a better validation loss before phase 2 stops (the best epoch is kept).",
    "key": "fineTune.patience",
    "kind": "integer",
    "label": "Patience",
    "max": {
      "inclusive": true,
      "value": 1000.0
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": true,
      "value": 1.0
    }
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "Views per step in phase 2.",
    "key": "fineTune.batchSize",
    "kind": "integer",
    "label": "Fine-tune batch size",
    "max": {
      "inclusive": true,
      "value": 1024.0
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": true,
      "value": 1.0
    }
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "Views cached per training picture for phase 2: the center view, then augmented ones.",
    "key": "viewsPerImage",
    "kind": "integer",
    "label": "Views per picture",
    "max": {
      "inclusive": true,
      "value": 32.0
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": true,
      "value": 1.0
    }
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "Random crops, flips and colour changes in phase 2.",
    "key": "augmentation.enabled",
    "kind": "boolean",
    "label": "Augment",
    "max": null,
    "maxIsUnits": false,
    "min": null
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "Turn off where left and right matter (text, digits, arrows).",
    "key": "augmentation.horizontalFlip",
    "kind": "boolean",
    "label": "Mirror left-right",
    "max": null,
    "maxIsUnits": false,
    "min": null
  },
  {
    "advanced": true,
    "displayScale": 1.0,
    "help": "Largest relative change of brightness, contrast and saturation.",
    "key": "augmentation.colorJitter",
    "kind": "number",
    "label": "Colour jitter",
    "max": {
      "inclusive": true,
      "value": 0.5
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": true,
      "value": 0.0
    }
  },
  {
    "advanced": true,
    "displayScale": 100.0,
    "help": "Smallest share of the picture a random crop covers.",
    "key": "augmentation.minCropArea",
    "kind": "number",
    "label": "Smallest crop",
    "max": {
      "inclusive": true,
      "value": 1.0
    },
    "maxIsUnits": false,
    "min": {
      "inclusive": true,
      "value": 0.05
    }
  }
];

/** The recipe's defaults. */
export const DEFAULT_RECIPE: Recipe = {
  "augmentation": {
    "colorJitter": 0.1,
    "enabled": true,
    "horizontalFlip": true,
    "minCropArea": 0.5
  },
  "fineTune": {
    "backboneLrFactor": 0.1,
    "batchSize": 16,
    "epochs": 10,
    "labelSmoothing": 0.1,
    "learningRate": 0.001,
    "patience": 3,
    "steps": 1000,
    "warmupEpochs": 1
  },
  "head": {
    "batchSize": 32,
    "dropout": 0.2,
    "epochs": 300,
    "hiddenUnits": 0,
    "learningRate": 0.001,
    "patience": 20,
    "seed": 42,
    "standardize": true,
    "valFraction": 0.15,
    "weightDecay": 0.01
  },
  "unfreeze": null,
  "viewsPerImage": 2
};

/**
 * The largest picture file the engine reads (`webtune::data::MAX_FILE_BYTES`). The page checks it
 * before a file's bytes are read at all, so a video in a class folder or a huge zip entry never
 * reaches the engine's memory.
 */
export const MAX_FILE_BYTES = 104857600;
