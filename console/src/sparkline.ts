/** Sparklines of the last minutes: a bounded series per key, drawn as an SVG polyline. */
import { svg } from './dom.ts';

/** Points kept per series: five minutes at one poll a second. */
export const SERIES_POINTS = 300;

export class SeriesBook {
  private readonly series = new Map<string, number[]>();

  push(key: string, value: number | null): void {
    let points = this.series.get(key);
    if (!points) this.series.set(key, (points = []));
    points.push(value === null || !Number.isFinite(value) ? 0 : value);
    if (points.length > SERIES_POINTS) points.splice(0, points.length - SERIES_POINTS);
  }

  get(key: string): number[] {
    return this.series.get(key) ?? [];
  }

  clear(): void {
    this.series.clear();
  }
}

export function sparkline(points: number[], options: { width?: number; height?: number; title: string; limit?: number | null }): SVGSVGElement {
  const width = options.width ?? 120;
  const height = options.height ?? 24;
  const max = Math.max(1e-9, ...points, options.limit ?? 0);
  const step = points.length > 1 ? width / (points.length - 1) : width;
  const y = (v: number) => (height - 2 - (v / max) * (height - 4)).toFixed(1);
  const line = points.map((v, i) => `${(i * step).toFixed(1)},${y(v)}`).join(' ');
  const el = svg('svg', { class: 'spark', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img' }, svg('title', {}, options.title));
  if (options.limit) el.append(svg('line', { class: 'spark-limit', x1: 0, x2: width, y1: y(options.limit), y2: y(options.limit) }));
  if (points.length > 0) el.append(svg('polyline', { class: 'spark-line', points: line }));
  return el;
}
