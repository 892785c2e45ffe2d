/** `tributary logs <fn>`: a function's recent console lines; --follow keeps printing new ones. */
import { getJson } from './client.ts';
import { client, intFlag, need, reading, type Command, type Values } from './command.ts';
import { printable } from './table.ts';

export interface LogLine {
  time: number;
  level: string;
  line: string;
  version: number;
}

/** The platform keeps this many lines per function (LOG_LINES_PER_FUNCTION): the most --follow reads per poll. */
const MAX_LOG_READ = 1000;

export function formatLog(l: LogLine): string {
  return `${new Date(l.time).toISOString()} v${l.version} ${l.level.padEnd(5)} ${printable(l.line)}`;
}

function readLogs(values: Values, name: string, limit: number): Promise<LogLine[]> {
  return getJson<{ logs: LogLine[] }>(client(values), `/v1/functions/${encodeURIComponent(name)}/logs?limit=${limit}`).then((r) => r.logs);
}

/**
 * Prints the lines of `name` newer than those already printed, every `intervalMs`, until
 * `signal` aborts. The API has no sequence numbers: a line is new when its time is later than the
 * last printed one, or equal and not among those printed at that time.
 */
export async function followLogs(values: Values, name: string, options: { intervalMs: number; initial: LogLine[]; asJson: boolean; signal?: AbortSignal; print?: (text: string) => void }): Promise<void> {
  const print = options.print ?? ((text: string) => console.log(text));
  let lastTime = -Infinity;
  let atLastTime = new Set<string>();
  const see = (l: LogLine) => {
    const id = `${l.version}\u0000${l.level}\u0000${l.line}`;
    if (l.time > lastTime) {
      lastTime = l.time;
      atLastTime = new Set([id]);
    } else atLastTime.add(id);
  };
  options.initial.forEach(see);
  while (!options.signal?.aborted) {
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs));
    if (options.signal?.aborted) return;
    let lines: LogLine[];
    try {
      lines = await readLogs(values, name, MAX_LOG_READ);
    } catch (error) {
      // The function may be mid-redeploy (dev) or the platform restarting: say so, keep following.
      print(`tributary: ${(error as { code?: string }).code ?? 'error'}: ${(error as Error).message}`);
      continue;
    }
    for (const l of lines) {
      const id = `${l.version}\u0000${l.level}\u0000${l.line}`;
      if (l.time < lastTime || (l.time === lastTime && atLastTime.has(id))) continue;
      see(l);
      print(options.asJson ? JSON.stringify(l) : formatLog(l));
    }
  }
}

export const logs: Command = {
  usage: 'tributary logs <name> [--limit 100] [--follow] [--interval-ms 1000] [--json]',
  summary: "print a function's recent console output (the platform keeps its last 1000 lines); --follow keeps printing",
  options: { ...reading, limit: { type: 'string', default: '100' }, follow: { type: 'boolean', short: 'f', default: false }, 'interval-ms': { type: 'string', default: '1000' } },
  async run({ values, positionals }) {
    const name = need(positionals, 0, 'name');
    const limit = intFlag(values, 'limit', 1, MAX_LOG_READ)!;
    const intervalMs = intFlag(values, 'interval-ms', 100, 60_000)!;
    const lines = await readLogs(values, name, limit);
    const asJson = Boolean(values.json);
    if (asJson && !values.follow) return console.log(JSON.stringify({ logs: lines }, null, 2));
    for (const l of lines) console.log(asJson ? JSON.stringify(l) : formatLog(l));
    if (values.follow) await followLogs(values, name, { intervalMs, initial: lines, asJson });
  },
};
