// How long the training run has left, from the times the run itself has measured so far: per
// picture for the features, per epoch for the head, per view for phase 2's cache, per epoch for
// fine-tuning. Every phase still ahead is counted at its most epochs (early stopping can only end
// it sooner); a phase whose speed nothing has measured yet is named instead of guessed.

import type { TrainingState } from './state';

/** What the run was asked to do, fixed when Train is pressed. */
export interface RunPlan {
  headEpochs: number;
  fineEpochs: number;
  viewsPerImage: number;
  /** Backbone units phase 2 fine-tunes (the recommendation's when the user left it); 0: none. */
  unfreeze: number;
}

export interface Remaining {
  /** Estimated milliseconds left for the phases whose speed is known. */
  ms: number;
  /** Phases still ahead whose speed is not measured yet, in order ("the head's epochs", ...). */
  untimed: string[];
}

const mean = (values: number[]) => values.reduce((sum, v) => sum + v, 0) / values.length;

/** The time left of a run in `training` done as `plan` says; null when no run is going. */
export function remainingTime(training: TrainingState, plan: RunPlan | null): Remaining | null {
  const running = ['features', 'training', 'caching', 'fine-tuning', 'evaluating'].includes(training.phase);
  if (!running || !plan) return null;
  let ms = 0;
  const untimed: string[] = [];

  // Features: one backbone pass per picture not cached by an earlier run.
  const perPicture = training.featuresDone > 0 && training.featureMs ? training.featureMs / training.featuresDone : null;
  if (training.phase === 'features') {
    const left = training.featuresTotal - training.featuresDone;
    if (perPicture !== null) ms += left * perPicture;
    else if (left > 0) untimed.push('the features');
  }

  // The head's epochs, until one says it was the last.
  const head = training.epochs.filter((e) => e.stage === 'head');
  const headOver = head.some((e) => e.done) || training.phase !== 'features' && training.phase !== 'training';
  if (!headOver) {
    const left = Math.max(0, (head.at(-1)?.epochs ?? plan.headEpochs) - head.length);
    if (head.length > 0) ms += left * mean(head.map((e) => e.epochMs));
    else if (left > 0) untimed.push("the head's epochs");
  }

  // Phase 2: a pass of the frozen prefix per view, then the fine-tuning epochs.
  const unfreeze = training.fine?.unfreeze ?? (training.split ? 0 : plan.unfreeze);
  if (unfreeze > 0 && training.phase !== 'evaluating') {
    const fine = training.fine;
    const cacheOver = training.phase === 'fine-tuning' || (fine !== null && fine.cacheTotal > 0 && fine.cacheDone === fine.cacheTotal);
    if (!cacheOver) {
      const total = fine && fine.cacheTotal > 0 ? fine.cacheTotal : training.split ? training.split.train * plan.viewsPerImage + training.split.val : null;
      const done = fine?.cacheDone ?? 0;
      // A prefix pass costs at most a whole backbone pass: the features' rate bounds it until measured.
      const perView = fine && done > 0 && fine.cacheMs ? fine.cacheMs / done : perPicture;
      if (total !== null && perView !== null) ms += (total - done) * perView;
      else untimed.push('the views for fine-tuning');
    }
    const tuned = training.epochs.filter((e) => e.stage === 'fine');
    if (!tuned.some((e) => e.done)) {
      const left = Math.max(0, (tuned.at(-1)?.epochs ?? plan.fineEpochs) - tuned.length);
      if (tuned.length > 0) ms += left * mean(tuned.map((e) => e.epochMs));
      else if (left > 0) untimed.push('the fine-tuning epochs');
    }
  }
  return { ms, untimed };
}

/** "About 40 s left", "About 3 min left", naming the phases not yet timed after it. */
export function remainingText({ ms, untimed }: Remaining): string {
  if (ms <= 0 && untimed.length > 0) return `Estimating the time left: ${untimed[0]} not timed yet…`;
  const seconds = Math.ceil(ms / 1000);
  const time = seconds < 60 ? `${Math.max(seconds, 1)} s` : `${Math.round(seconds / 60)} min`;
  const plus = untimed.length > 0 ? `, plus ${untimed.join(' and ')} (not timed yet)` : '';
  return `About ${time} left${plus}.`;
}
