// Live loss and accuracy curves (train and validation) per epoch, drawn with uPlot.

import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { EpochRecord } from './state';

const TRAIN_COLOR = '#2563eb';
const VAL_COLOR = '#ea580c';

function options(title: string, yLabel: string, width: number, percent: boolean): uPlot.Options {
  const format = (value: number | null) =>
    value === null ? '–' : percent ? `${(value * 100).toFixed(1)} %` : value.toFixed(4);
  return {
    title,
    width,
    height: 220,
    scales: { x: { time: false }, y: percent ? { range: [0, 1] } : { auto: true } },
    axes: [
      // Whole epochs only.
      { label: 'epoch', incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500] },
      { label: yLabel, values: (_u, ticks) => ticks.map((t) => (percent ? `${Math.round(t * 100)}%` : String(t))) },
    ],
    series: [
      { label: 'epoch' },
      { label: 'train', stroke: TRAIN_COLOR, width: 2, spanGaps: true, value: (_u, v) => format(v) },
      { label: 'validation', stroke: VAL_COLOR, width: 2, spanGaps: true, dash: [6, 4], value: (_u, v) => format(v) },
    ],
  };
}

export class MetricsChart {
  private readonly loss: uPlot;
  private readonly accuracy: uPlot;
  private shown = -1;

  constructor(container: HTMLElement) {
    const width = chartWidth(container);
    const empty: uPlot.AlignedData = [[], [], []];
    const lossBox = container.appendChild(document.createElement('div'));
    const accuracyBox = container.appendChild(document.createElement('div'));
    this.loss = new uPlot(options('Loss', 'cross-entropy', width, false), empty, lossBox);
    this.accuracy = new uPlot(options('Accuracy', 'accuracy', width, true), empty, accuracyBox);
    new ResizeObserver(() => {
      const w = chartWidth(container);
      for (const chart of [this.loss, this.accuracy]) chart.setSize({ width: w, height: 220 });
    }).observe(container);
  }

  show(epochs: EpochRecord[]): void {
    if (epochs.length === this.shown) return;
    this.shown = epochs.length;
    const x = epochs.map((e) => e.epoch);
    this.loss.setData([x, epochs.map((e) => e.trainLoss), epochs.map((e) => e.valLoss)]);
    this.accuracy.setData([x, epochs.map((e) => e.trainAccuracy), epochs.map((e) => e.valAccuracy)]);
  }
}

/** Two charts side by side when there is room, stacked otherwise. */
function chartWidth(container: HTMLElement): number {
  const width = container.clientWidth || 600;
  return width >= 720 ? Math.floor(width / 2) - 8 : width;
}
