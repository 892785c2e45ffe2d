/**
 * What every `tributary` command shares: its shape, the common flags (--url, --token, --json,
 * --help), the API clients and argument checks. Exit codes: 0 ok, 1 the platform answered an
 * error or could not be reached, 2 a usage error (docs/cli.md).
 */
import type { ParseArgsConfig } from 'node:util';
import type { ClientOptions } from './client.ts';

export type Values = Record<string, string | boolean | string[] | undefined>;

export interface Command {
  usage: string;
  summary: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(args: { values: Values; positionals: string[] }): Promise<void>;
}

/** A command with subcommands (`tributary graph <subcommand>`). */
export interface CommandGroup {
  summary: string;
  subcommands: Record<string, Command>;
}

export const DEFAULT_URL = 'http://127.0.0.1:8787';

export const common = {
  url: { type: 'string', default: process.env.TRIBUTARY_URL ?? DEFAULT_URL },
  token: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The flags of a read command: the common ones and --json (machine-readable output). */
export const reading = { ...common, json: { type: 'boolean', default: false } } as const;

/** The management API's client: with the token (--token, else $TRIBUTARY_TOKEN). */
export function client(values: Values): ClientOptions {
  return { url: String(values.url), token: typeof values.token === 'string' ? values.token : process.env.TRIBUTARY_TOKEN };
}

/** The invoke route's client: never the token, which would be handed to someone else's code. */
export function anonymous(values: Values): ClientOptions {
  return { url: String(values.url) };
}

export class UsageError extends Error {}

export function need(positionals: string[], index: number, what: string): string {
  const value = positionals[index];
  if (!value) throw new UsageError(`missing <${what}>`);
  return value;
}

/** A flag that must be a plain decimal integer in [min, max]; unset stays undefined (the default applies). */
export function intFlag(values: Values, flag: string, min: number, max: number): number | undefined {
  const raw = values[flag];
  if (raw === undefined) return undefined;
  const text = String(raw);
  const value = /^(0|[1-9][0-9]*)$/.test(text) ? Number(text) : NaN;
  if (!(value >= min && value <= max)) throw new UsageError(`--${flag} must be an integer in [${min}, ${max}], got '${text.slice(0, 40)}'`);
  return value;
}
