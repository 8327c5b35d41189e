// Live loss and accuracy curves (train and validation) per epoch, drawn with uPlot. Phase 2
// continues phase 1's epoch axis in its own colours, after a labelled dividing line.

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { EpochRecord } from '../app/state';

const TRAIN_COLOR = '#2563eb';
const VAL_COLOR = '#ea580c';
const FINE_TRAIN_COLOR = '#059669';
const FINE_VAL_COLOR = '#9333ea';
const DIVIDER_COLOR = '#59636e';

/** The last head epoch on the shared axis; the divider goes half an epoch after it. */
interface Boundary {
  headEpochs: number;
  fine: boolean;
}

function options(title: string, yLabel: string, width: number, percent: boolean, boundary: Boundary): uPlot.Options {
  const format = (value: number | null) =>
    value === null ? '–' : percent ? `${(value * 100).toFixed(1)} %` : value.toFixed(4);
  const line = (label: string, stroke: string, dashed: boolean): uPlot.Series => ({
    label,
    stroke,
    width: 2,
    spanGaps: false,
    dash: dashed ? [6, 4] : undefined,
    value: (_u, v) => format(v),
  });
  return {
    title,
    width,
    height: 220,
    scales: { x: { time: false }, y: percent ? { range: [0, 1] } : { auto: true } },
    axes: [
      // Whole epochs only.
      { label: 'epoch (both phases)', incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500] },
      { label: yLabel, values: (_u, ticks) => ticks.map((t) => (percent ? `${Math.round(t * 100)}%` : String(t))) },
    ],
    series: [
      { label: 'epoch' },
      line('train (head)', TRAIN_COLOR, false),
      line('validation (head)', VAL_COLOR, true),
      // Phase 2 trains with label smoothing, which keeps its training loss above phase 1's.
      line(percent ? 'train (fine-tune)' : 'train (fine-tune, smoothed labels)', FINE_TRAIN_COLOR, false),
      line('validation (fine-tune)', FINE_VAL_COLOR, true),
    ],
    hooks: { draw: [(u) => drawDivider(u, boundary)] },
  };
}

/** A dashed vertical line between the phases, labelled "phase 2: fine-tuning". */
function drawDivider(u: uPlot, boundary: Boundary): void {
  if (!boundary.fine) return;
  const x = u.valToPos(boundary.headEpochs + 0.5, 'x', true);
  const { top, height } = u.bbox;
  const ctx = u.ctx;
  ctx.save();
  ctx.strokeStyle = DIVIDER_COLOR;
  ctx.lineWidth = Math.max(1, devicePixelRatio);
  ctx.setLineDash([4 * devicePixelRatio, 4 * devicePixelRatio]);
  ctx.beginPath();
  ctx.moveTo(x, top);
  ctx.lineTo(x, top + height);
  ctx.stroke();
  ctx.setLineDash([]);
  ctx.fillStyle = DIVIDER_COLOR;
  ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
  ctx.textBaseline = 'top';
  // Right of the line when there is room, else left of it.
  const label = 'phase 2: fine-tuning →';
  const gap = 4 * devicePixelRatio;
  const fits = x + gap + ctx.measureText(label).width <= u.bbox.left + u.bbox.width;
  ctx.textAlign = fits ? 'left' : 'right';
  ctx.fillText(label, fits ? x + gap : x - gap, top + gap);
  ctx.restore();
}

export class MetricsChart {
  private readonly loss: uPlot;
  private readonly accuracy: uPlot;
  private readonly boundary: Boundary = { headEpochs: 0, fine: false };
  private shown = -1;

  constructor(private readonly container: HTMLElement) {
    const width = chartWidth(container);
    const empty: uPlot.AlignedData = [[], [], [], [], []];
    const lossBox = container.appendChild(document.createElement('div'));
    const accuracyBox = container.appendChild(document.createElement('div'));
    this.loss = new uPlot(options('Loss', 'cross-entropy', width, false, this.boundary), empty, lossBox);
    this.accuracy = new uPlot(options('Accuracy', 'accuracy', width, true, this.boundary), empty, accuracyBox);
    new ResizeObserver(() => {
      const w = chartWidth(container);
      for (const chart of [this.loss, this.accuracy]) chart.setSize({ width: w, height: 220 });
    }).observe(container);
  }

  /** `epochs`: phase 1's, then phase 2's; plotted on one axis, 1, 2, … across both. */
  show(epochs: EpochRecord[]): void {
    if (epochs.length === this.shown) return;
    this.shown = epochs.length;
    this.boundary.headEpochs = epochs.filter((e) => e.stage === 'head').length;
    this.boundary.fine = epochs.some((e) => e.stage === 'fine');
    this.container.dataset.headEpochs = String(this.boundary.headEpochs);
    this.container.dataset.fineEpochs = String(epochs.length - this.boundary.headEpochs);
    const x = epochs.map((_, i) => i + 1);
    const of = (stage: EpochRecord['stage'], value: (e: EpochRecord) => number | null) =>
      epochs.map((e) => (e.stage === stage ? value(e) : null));
    this.loss.setData([
      x,
      of('head', (e) => e.trainLoss),
      of('head', (e) => e.valLoss),
      of('fine', (e) => e.trainLoss),
      of('fine', (e) => e.valLoss),
    ]);
    this.accuracy.setData([
      x,
      of('head', (e) => e.trainAccuracy),
      of('head', (e) => e.valAccuracy),
      of('fine', (e) => e.trainAccuracy),
      of('fine', (e) => e.valAccuracy),
    ]);
  }
}

/** Two charts side by side when there is room, stacked otherwise. */
function chartWidth(container: HTMLElement): number {
  const width = container.clientWidth || 600;
  return width >= 720 ? Math.floor(width / 2) - 8 : width;
}
