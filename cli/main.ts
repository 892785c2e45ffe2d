/**
 * Dispatch of `tributary <command> [<subcommand>] [options]`: parses the flags, prints help, maps
 * errors to exit codes — 0 ok, 1 the platform answered an error (its stable code is printed) or
 * could not be reached, 2 a usage error.
 */
import { parseArgs } from 'node:util';
import { ApiError } from './client.ts';
import { UsageError, type Command, type CommandGroup } from './command.ts';

export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;

function isGroup(entry: Command | CommandGroup): entry is CommandGroup {
  return 'subcommands' in entry;
}

function list(entries: Record<string, Command | CommandGroup>): string {
  return Object.entries(entries)
    .map(([name, c]) => `  ${name.padEnd(13)} ${c.summary}`)
    .join('\n');
}

function help(commands: Record<string, Command | CommandGroup>): string {
  return (
    `usage: tributary <command> [options]\n\ncommands:\n${list(commands)}\n\n` +
    `Every remote command takes --url URL (default $TRIBUTARY_URL or http://127.0.0.1:8787) and\n` +
    `--token TOKEN (default $TRIBUTARY_TOKEN); read commands take --json.\n` +
    `Exit codes: 0 ok, 1 the platform answered an error or cannot be reached, 2 usage error.\n\n` +
    `Run 'tributary <command> --help' for a command's options.`
  );
}

function groupHelp(name: string, group: CommandGroup): string {
  return `usage: tributary ${name} <subcommand> [options]\n\n${group.summary}\n\nsubcommands:\n${list(group.subcommands)}\n\nRun 'tributary ${name} <subcommand> --help' for its options.`;
}

export async function main(commands: Record<string, Command | CommandGroup>, argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(help(commands));
    return name ? EXIT_OK : EXIT_USAGE;
  }
  const entry = commands[name];
  if (!entry) {
    console.error(`tributary: unknown command '${name}'\n\n${help(commands)}`);
    return EXIT_USAGE;
  }
  let command: Command;
  let label = name;
  let args = rest;
  if (isGroup(entry)) {
    const [sub, ...subRest] = rest;
    if (!sub || sub === '--help' || sub === '-h' || sub === 'help') {
      console.log(groupHelp(name, entry));
      return sub ? EXIT_OK : EXIT_USAGE;
    }
    const found = entry.subcommands[sub];
    if (!found) {
      console.error(`tributary ${name}: unknown subcommand '${sub}'\n\n${groupHelp(name, entry)}`);
      return EXIT_USAGE;
    }
    command = found;
    label = `${name} ${sub}`;
    args = subRest;
  } else {
    command = entry;
  }
  try {
    const parsed = parseArgs({ args, options: command.options, allowPositionals: true });
    if (parsed.values.help) {
      console.log(`usage: ${command.usage}\n\n${command.summary}`);
      return EXIT_OK;
    }
    await command.run(parsed as Parameters<Command['run']>[0]);
    return EXIT_OK;
  } catch (error) {
    if (error instanceof ApiError) console.error(`tributary: ${error.code}: ${error.message}`);
    else if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`tributary ${label}: ${(error as Error).message}\nusage: ${command.usage}`);
      return EXIT_USAGE;
    } else {
      // Platform errors carry a stable code (ERR_S3_CONFIG at startup...): show it.
      const code = (error as { code?: unknown }).code;
      console.error(`tributary: ${typeof code === 'string' && code.startsWith('ERR_') ? `${code}: ` : ''}${(error as Error).message}`);
    }
    return EXIT_ERROR;
  }
}
