// The training panel's state as a reducer over the engine's events: the engine runs the recipe
// and says what happened; nothing here decides anything about training.

import type { Outcome, Recipe, TrainingEvent, WorkerEvent } from '../engine/protocol';
import { EngineGone } from '../engine/trainer-client';
import { messageOf, type AppContext } from './context';
import { idleFineTune, idleTraining, isTraining, type TrainingState } from './state';

/** Runs the recipe in the engine, which owns it; the training panel follows its events. */
export class TrainingRun {
  constructor(private readonly ctx: AppContext) {}


  /**
   * Runs the recipe in the engine, which owns it: the training panel follows its events. A
   * failure after the head trained keeps the model the engine has so far.
   */
  async train(recipe: Recipe): Promise<void> {
    if (isTraining(this.ctx.state) || !this.ctx.state.summary.trainable) return;
    const backboneName = this.ctx.state.engine.backboneName ?? 'model';
    const classCount = this.ctx.state.summary.classes.length;
    const plan = {
      headEpochs: recipe.head.epochs,
      fineEpochs: recipe.fineTune.epochs,
      viewsPerImage: recipe.viewsPerImage,
      unfreeze: recipe.unfreeze ?? this.ctx.state.summary.recommendation.unfreeze,
    };
    this.ctx.store.update((s) => {
      s.training = { ...idleTraining(), phase: 'features', plan };
      s.trained = null;
      s.predictions = [];
    });
    let result;
    try {
      result = await this.ctx.call({ type: 'train', recipe });
    } catch (error) {
      this.trainingFailed(error, backboneName, classCount);
      return;
    }
    const { outcome, helper } = result;
    this.ctx.store.update((s) => {
      s.training = finishTraining(s.training, outcome);
      s.training.helperAnswers = helper?.answered ?? null;
      if (helper?.lost) {
        const note = `the second core's worker stopped (${helper.lost.replace(/\.$/, '')}), so training went on with one core`;
        s.training.notes = withNotes(s.training.notes, [note]);
        // The engine trains alone from now on; the backend label says so.
        s.engine = { ...s.engine, workers: 1 };
      }
      s.trained = outcome.hasModel ? { backboneName, classCount, fineTuned: outcome.fineTuned } : null;
    });
  }

  /**
   * Shows why the run failed. An engine that crashed is restarted by onCrash (which runs first and
   * knows whether the GPU gave up) without the model; otherwise the engine kept the model trained
   * so far, if the head finished an epoch.
   */
  private trainingFailed(error: unknown, backboneName: string, classCount: number): void {
    if (error instanceof EngineGone && error.crashed && !isTraining(this.ctx.state)) return;
    const epochs = this.ctx.state.training.epochs;
    const kept = !(error instanceof EngineGone) && epochs.length > 0;
    const fineTuned = epochs.some((e) => e.stage === 'fine') ? (this.ctx.state.training.fine?.unfreeze ?? 0) : 0;
    const where = this.ctx.state.training.phase === 'caching' || fineTuned > 0 ? 'Fine-tuning (phase 2) failed' : 'Training failed';
    const message = messageOf(error);
    const after = kept
      ? fineTuned > 0
        ? ' You can still download the model and try it.'
        : ' The model trained so far (head only) is kept: you can still download it and try it.'
      : '';
    this.ctx.store.update((s) => {
      s.training = { ...s.training, phase: 'failed', paused: false, error: `${where}: ${message}${/[.!?]$/.test(message) ? '' : '.'}${after}` };
      if (kept) s.trained = { backboneName, classCount, fineTuned };
    });
  }

  stop(): void {
    if (isTraining(this.ctx.state)) this.ctx.stop();
  }

  /** Pause holds the run between two engine steps; the engine keeps its state until Resume. */
  async setPaused(paused: boolean): Promise<void> {
    if (!isTraining(this.ctx.state) || this.ctx.state.training.paused === paused) return;
    try {
      await this.ctx.call({ type: 'pauseTraining', paused });
    } catch (error) {
      if (!(error instanceof EngineGone)) this.ctx.reportError(`Could not ${paused ? 'pause' : 'resume'} training: ${messageOf(error)}`);
      return;
    }
    this.ctx.store.update((s) => {
      if (isTraining(s)) s.training = { ...s.training, paused };
    });
  }

  onWorkerEvent({ event, elapsedMs }: WorkerEvent): void {
    this.ctx.store.update((s) => {
      s.training = reduceTraining(s.training, event, elapsedMs);
    });
  }
}

/** `training` after `event`, which arrived `elapsedMs` after the run started. */
export function reduceTraining(training: TrainingState, event: TrainingEvent, elapsedMs: number): TrainingState {
  const t = { ...training, lastEventMs: elapsedMs };
  const sinceStage = elapsedMs - training.stageStartMs;
  switch (event.type) {
    case 'features':
      return { ...t, phase: 'features', featuresDone: event.done, featuresTotal: event.total, featureMs: elapsedMs };
    case 'split':
      return {
        ...t,
        phase: 'training',
        split: { train: event.train, val: event.val },
        notes: withNotes(t.notes, event.notes),
        fine: event.unfreeze > 0 ? idleFineTune(event.unfreeze) : null,
        featureMs: training.featureMs ?? 0,
        stageStartMs: elapsedMs,
      };
    case 'epoch': {
      const epochs = [...t.epochs, { ...event.report, stage: event.phase, epochMs: elapsedMs - training.lastEventMs }];
      const ended = event.report.done ? { stageStartMs: elapsedMs } : {};
      if (event.phase === 'head') return { ...t, ...ended, phase: 'training', epochs, trainMs: sinceStage };
      return { ...t, ...ended, phase: 'fine-tuning', epochs, fine: t.fine && { ...t.fine, fineMs: sinceStage } };
    }
    case 'cache': {
      if (!t.fine) return t;
      const fine = { ...t.fine, cacheDone: event.done, cacheTotal: event.total, cacheBytes: event.bytes, cacheMs: sinceStage };
      const ended = event.done === event.total ? { stageStartMs: elapsedMs } : {};
      return { ...t, ...ended, phase: 'caching', notes: withNotes(t.notes, event.note ? [event.note] : []), fine };
    }
    case 'evaluated':
      return { ...t, phase: 'evaluating', evaluation: event.evaluation };
  }
}

/** The training panel once the run is over, as the engine's outcome says. */
export function finishTraining(training: TrainingState, outcome: Outcome): TrainingState {
  const fine = training.fine && { ...training.fine, stoppedEarly: outcome.stoppedEarly, bestEpoch: outcome.bestEpoch };
  return { ...training, phase: outcome.stopped ? 'stopped' : 'done', fine, paused: false };
}

function withNotes(notes: string[], added: string[]): string[] {
  return [...notes, ...added.filter((note) => !notes.includes(note))];
}
