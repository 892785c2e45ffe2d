/**
 * Console output per function, in memory, bounded three ways: the last LOG_LINES_PER_FUNCTION
 * lines and LOG_BYTES_PER_FUNCTION bytes of each function (oldest lines dropped first), and at
 * most LOG_FUNCTIONS_KEPT functions and LOG_BYTES_TOTAL bytes overall (the functions written least
 * recently are dropped whole). Bytes are approximate: characters plus a fixed cost per line.
 */
import { LRUCache } from 'lru-cache';
import { LOG_BYTES_PER_FUNCTION, LOG_BYTES_TOTAL, LOG_FUNCTIONS_KEPT, LOG_LINES_PER_FUNCTION } from './limits.ts';
import type { LogLine } from './host/function-instance.ts';

export interface FunctionLogLine extends LogLine {
  version: number;
}

export interface LogBufferOptions {
  linesPerFunction?: number;
  bytesPerFunction?: number;
  functions?: number;
  totalBytes?: number;
}

/** What a kept line costs beyond its text: the object, its level, time and version. */
const LINE_OVERHEAD_BYTES = 64;

interface FunctionLog {
  lines: FunctionLogLine[];
  bytes: number;
}

export class LogBuffer {
  private readonly linesPerFunction: number;
  private readonly bytesPerFunction: number;
  private readonly logs: LRUCache<string, FunctionLog>;

  constructor(options: LogBufferOptions = {}) {
    this.linesPerFunction = options.linesPerFunction ?? LOG_LINES_PER_FUNCTION;
    this.bytesPerFunction = options.bytesPerFunction ?? LOG_BYTES_PER_FUNCTION;
    this.logs = new LRUCache<string, FunctionLog>({ max: options.functions ?? LOG_FUNCTIONS_KEPT, maxSize: options.totalBytes ?? LOG_BYTES_TOTAL });
  }

  append(name: string, version: number, lines: readonly LogLine[]): void {
    if (lines.length === 0) return;
    const log = this.logs.get(name) ?? { lines: [], bytes: 0 };
    for (const line of lines) {
      log.lines.push({ ...line, version });
      log.bytes += costOf(line);
    }
    let drop = 0;
    while (drop < log.lines.length && (log.lines.length - drop > this.linesPerFunction || log.bytes > this.bytesPerFunction)) {
      log.bytes -= costOf(log.lines[drop]);
      drop++;
    }
    if (drop > 0) log.lines.splice(0, drop);
    if (log.lines.length === 0) this.logs.delete(name);
    else this.logs.set(name, log, { size: Math.max(1, log.bytes) });
  }

  read(name: string, limit = this.linesPerFunction): FunctionLogLine[] {
    const lines = this.logs.peek(name)?.lines ?? [];
    return lines.slice(Math.max(0, lines.length - limit));
  }

  drop(name: string): void {
    this.logs.delete(name);
  }

  /** Functions with lines kept, and their approximate bytes (for tests and metrics). */
  get size(): { functions: number; bytes: number } {
    return { functions: this.logs.size, bytes: this.logs.calculatedSize };
  }
}

function costOf(line: LogLine): number {
  return String(line.line).length + LINE_OVERHEAD_BYTES;
}
