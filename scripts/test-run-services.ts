/**
 * What `npm test` does with the services its tests start (Kafka, S3 server, Prometheus): it stops
 * those a test run started, and never one it found running. `ensureService`, under vitest, marks a
 * service it had to start; vitest's global teardown (test/global-setup.ts) stops the marked ones.
 * Several vitest runs may share one machine: a run that finishes while another still runs leaves
 * the marked services to it, and the last run to finish stops them. A service started by hand
 * (`bash scripts/kafka.sh start`), by a bench, or by a run older than this scheme carries no mark
 * and is left alone; so is one that was running when the first of the overlapping runs began,
 * even if a test stopped and started it again.
 *
 * State lives in $TRIBUTARY_RUN/test-runs (default ~/.cache/tributary/run/test-runs): one file
 * per live run (named by its pid, holding the process's start time: a dead or recycled pid no
 * longer counts), `found` (what ran before the first of them began) and one `started-<service>`
 * mark per service a test run started.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { SERVICES, serviceRunning, stopService, type ServiceName } from './services.ts';

export interface TestRunOptions {
  /** Services to stop at the end (default all). */
  services?: readonly ServiceName[];
  /** Environment for the scripts (TRIBUTARY_RUN, ports...); its TRIBUTARY_RUN also places the state. */
  env?: Record<string, string>;
  /** This run's id (default the process pid); other runs wait for it while this pid lives. */
  pid?: number;
}

function stateDir(env: Record<string, string>): string {
  const run = env.TRIBUTARY_RUN ?? process.env.TRIBUTARY_RUN ?? join(homedir(), '.cache', 'tributary', 'run');
  return join(run, 'test-runs');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** When the process started (Linux: field 22 of /proc/<pid>/stat), so a recycled pid is not taken for a live run; '' elsewhere. */
function startTimeOf(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

/** True while the run that wrote lease `pid` (with `startTime`) is still the process with that pid. */
function liveRun(dir: string, pid: number): boolean {
  if (!alive(pid)) return false;
  try {
    return readFileSync(join(dir, String(pid)), 'utf8').trim() === startTimeOf(pid);
  } catch {
    return false;
  }
}

/** Runs `fn` holding a lock directory (mkdir is atomic); a lock older than 5 minutes is stale. */
async function locked<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(dir, 'lock');
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      try {
        if (Date.now() - Number(readFileSync(join(lock, 'at'), 'utf8')) > 5 * 60_000) rmSync(lock, { recursive: true, force: true });
      } catch {}
      if (Date.now() > deadline) throw new Error(`test-run-services: could not take ${lock}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  writeFileSync(join(lock, 'at'), String(Date.now()));
  try {
    return await fn();
  } finally {
    rmSync(join(lock, 'at'), { force: true });
    rmdirSync(lock);
  }
}

/** Marks `name` as started by a test run (called by ensureService when it started it). */
export function markStartedByTests(name: ServiceName, env: Record<string, string> = {}): void {
  const dir = stateDir(env);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `started-${name}`), `${new Date().toISOString()} pid ${process.pid}\n`);
}

function liveRuns(dir: string, except: number): number[] {
  return readdirSync(dir)
    .filter((f) => /^[0-9]+$/.test(f))
    .map(Number)
    .filter((p) => p !== except && liveRun(dir, p));
}

/**
 * Registers this run as live; call when it begins. The first of overlapping runs also notes the
 * services already running (`found`): those are never stopped, even if a test restarts one.
 */
export async function beginTestRun(options: TestRunOptions = {}): Promise<void> {
  const env = options.env ?? {};
  const dir = stateDir(env);
  mkdirSync(dir, { recursive: true });
  const pid = options.pid ?? process.pid;
  await locked(dir, async () => {
    if (liveRuns(dir, pid).length === 0) {
      const found: ServiceName[] = [];
      for (const name of SERVICES) if (await serviceRunning(name, env)) found.push(name);
      writeFileSync(join(dir, 'found'), JSON.stringify(found));
    }
    writeFileSync(join(dir, String(pid)), `${startTimeOf(pid)}\n`);
  });
}

function readFound(dir: string): ServiceName[] {
  try {
    return JSON.parse(readFileSync(join(dir, 'found'), 'utf8')) as ServiceName[];
  } catch {
    return [];
  }
}

/**
 * Ends this run: when no other run is live, stops every service a test run started (and clears
 * its mark); returns the services it stopped.
 */
export async function endTestRun(options: TestRunOptions = {}): Promise<ServiceName[]> {
  const env = options.env ?? {};
  const dir = stateDir(env);
  const pid = options.pid ?? process.pid;
  mkdirSync(dir, { recursive: true });
  return locked(dir, async () => {
    rmSync(join(dir, String(pid)), { force: true });
    if (liveRuns(dir, pid).length > 0) return [];
    const found = readFound(dir);
    const stopped: ServiceName[] = [];
    for (const name of options.services ?? SERVICES) {
      const mark = join(dir, `started-${name}`);
      if (!existsSync(mark)) continue;
      rmSync(mark, { force: true });
      if (found.includes(name)) continue; // running before the first run began: the user's
      await stopService(name, env);
      stopped.push(name);
    }
    return stopped;
  });
}
