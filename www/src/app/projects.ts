// Saving the page as a project file and opening one: classes, pictures (through the normal add
// path, so a bad picture is listed like any other), the settings, and the trained model, which
// the engine reopens so that "Try it" and the downloads work at once.

import type { Recipe } from '../engine/protocol';
import { messageOf, type AppContext } from './context';
import { ProjectRefused, exportLabels, readProject, writeProject, type OpenedProject } from './project-file';
import { idleTraining, isTraining } from './state';
import type { Picked } from '../views/drop-zone';

export interface ProjectHooks {
  addPicked(picked: Picked): void;
  clearAll(): Promise<void>;
  /** The recipe the Advanced settings say (null after the form showed why it is invalid). */
  readRecipe(): Recipe | null;
  applyRecipe(recipe: Recipe): void;
}

export type ProjectStatus = { state: 'idle' | 'saving' | 'opening' | 'opened' | 'refused'; text: string };

/** Until the add queue has given every picture to the engine (or listed it as a problem). */
async function picturesSettled(ctx: AppContext): Promise<void> {
  while (ctx.state.adding > 0) await new Promise((resolve) => setTimeout(resolve, 50));
}

export class Projects {
  status: ProjectStatus = { state: 'idle', text: '' };

  constructor(
    private readonly ctx: AppContext,
    private readonly hooks: ProjectHooks,
    private readonly onStatus: (status: ProjectStatus) => void,
  ) {}

  private say(state: ProjectStatus['state'], text: string): void {
    this.status = { state, text };
    this.onStatus(this.status);
  }

  /** The project as a file, or null (then the status says why). */
  async save(): Promise<{ blob: Blob; fileName: string } | null> {
    const state = this.ctx.state;
    if (isTraining(state) || state.adding > 0) {
      this.say('refused', 'Wait for training and the pictures being read to finish, then save.');
      return null;
    }
    const recipe = this.hooks.readRecipe();
    if (!recipe) {
      this.say('refused', 'A setting under Advanced is not valid: fix it, then save.');
      return null;
    }
    this.say('saving', 'Preparing the project file…');
    try {
      let model = null;
      if (state.trained) {
        const { bytes } = await this.ctx.call({ type: 'export', format: 'safetensors' });
        model = { bytes, classes: exportLabels(bytes), fineTuned: state.trained.fineTuned };
      }
      const images = [...state.images.values()].sort((a, b) => a.key - b.key);
      const blob = await writeProject({
        backbone: state.engine.backboneName ?? state.backbone.wanted.name,
        classes: state.classes,
        recipe,
        images,
        model,
      });
      const date = new Date().toISOString().slice(0, 10);
      this.say('idle', `Saved ${images.length} picture${images.length === 1 ? '' : 's'}${model ? ', the settings and the trained model' : ' and the settings'}.`);
      return { blob, fileName: `webtune-project-${date}.webtune` };
    } catch (error) {
      this.say('refused', `Could not save the project: ${messageOf(error)}.`);
      return null;
    }
  }

  /**
   * Opens a project file. It is read and checked whole first: a file that is not a project (or a
   * newer one) changes nothing. Pictures on the page are replaced only when `confirmReplace` says so.
   */
  async open(file: File, confirmReplace: (count: number) => boolean): Promise<void> {
    if (isTraining(this.ctx.state) || this.ctx.state.adding > 0) {
      this.say('refused', `${file.name} was not opened: wait for training and the pictures being read to finish.`);
      return;
    }
    this.say('opening', `Reading ${file.name}…`);
    let project: OpenedProject;
    try {
      project = await readProject(file);
    } catch (error) {
      const why = error instanceof ProjectRefused ? error.message : `${file.name}: ${messageOf(error)}`;
      this.say('refused', `Not opened: ${why}. Nothing on the page changed.`);
      return;
    }
    const held = this.ctx.state.images.size;
    if (this.ctx.state.classes.length > 0 && !confirmReplace(held)) {
      this.say('refused', `${file.name} was not opened: your ${held} picture${held === 1 ? ' is' : 's are'} unchanged.`);
      return;
    }
    const { manifest, picked } = project;
    if (this.ctx.state.classes.length > 0) await this.hooks.clearAll();
    if (manifest.recipe) this.hooks.applyRecipe(manifest.recipe);
    this.hooks.addPicked(picked);
    await picturesSettled(this.ctx);

    const added = this.ctx.state.images.size;
    const notes: string[] = [];
    const problems = picked.problems.length + (manifest.pictures.length - picked.problems.length - added);
    if (problems > 0) notes.push(`${problems} picture${problems === 1 ? ' was' : 's were'} not added (listed under "Not added")`);
    if (project.modelProblem) notes.push(`${project.modelProblem}: train again to get it back`);
    else if (project.model && manifest.model) notes.push(await this.reopenModel(project.model, manifest.backbone, manifest.model.classes, manifest.model.fineTuned));
    this.say(
      'opened',
      `Opened ${file.name}: ${manifest.classes.length} classes, ${added} picture${added === 1 ? '' : 's'}, the settings` +
        (notes.length > 0 ? `; ${notes.join('; ')}.` : '.'),
    );
  }

  /** Gives the saved model to the engine; says what came of it. */
  private async reopenModel(model: Blob, backbone: string, classes: string[], fineTuned: number): Promise<string> {
    const running = this.ctx.state.engine.backboneName;
    if (running !== backbone) {
      return `its model was trained on ${backbone}, but this page runs ${running ?? 'no backbone yet'}: choose ${backbone} under Advanced and open the project again to use it`;
    }
    const pictureClasses = this.ctx.state.summary.classes.map((c) => c.label);
    try {
      const { labels } = await this.ctx.call({ type: 'loadModel', file: model });
      this.ctx.store.update((s) => {
        s.trained = { backboneName: backbone, classCount: labels.length, fineTuned };
        s.training = idleTraining();
        s.predictions = [];
      });
      const same = labels.length === classes.length && labels.every((l, i) => l === classes[i]);
      const matches = same && pictureClasses.length === labels.length && labels.every((l) => pictureClasses.includes(l));
      return matches ? 'the trained model is ready to try' : `the trained model (classes ${labels.join(', ')}) is ready to try`;
    } catch (error) {
      return `its trained model could not be reopened (${messageOf(error)}): train again to get it back`;
    }
  }
}
