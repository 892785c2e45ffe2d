/** Console output per function: the last LOG_LINES_PER_FUNCTION lines, in memory. */
import { LOG_LINES_PER_FUNCTION } from './limits.ts';
import type { LogLine } from './host/function-instance.ts';

export interface FunctionLogLine extends LogLine {
  version: number;
}

export class LogBuffer {
  private readonly lines = new Map<string, FunctionLogLine[]>();

  append(name: string, version: number, lines: readonly LogLine[]): void {
    if (lines.length === 0) return;
    let buffer = this.lines.get(name);
    if (!buffer) this.lines.set(name, (buffer = []));
    for (const line of lines) buffer.push({ ...line, version });
    if (buffer.length > LOG_LINES_PER_FUNCTION) buffer.splice(0, buffer.length - LOG_LINES_PER_FUNCTION);
  }

  read(name: string, limit = LOG_LINES_PER_FUNCTION): FunctionLogLine[] {
    const buffer = this.lines.get(name) ?? [];
    return buffer.slice(Math.max(0, buffer.length - limit));
  }

  drop(name: string): void {
    this.lines.delete(name);
  }
}
