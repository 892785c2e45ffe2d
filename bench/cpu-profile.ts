/**
 * Summarizes V8 CPU profiles (`node --cpu-prof`): self time per function and per hop of the
 * invoke path (the file a function lives in decides its hop), for docs/performance.md.
 *
 *   node bench/cpu-profile.ts /tmp/prof/*.cpuprofile [--top 25] [--last 5]
 *
 * `--last S` counts only the profile's last S seconds (the load phase, without process start-up).
 */
import { readFileSync } from 'node:fs';
import { printTable, round } from './report.ts';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

/** Hops of an invoke, by where the code lives (first match wins). */
const HOPS: Array<[string, RegExp]> = [
  ['idle', /^\((idle|program)\)$/],
  ['gc', /^\(garbage collector\)$/],
  ['isolate entry + guest (isolated-vm, user code)', /isolated-vm|^fn:|tributary:bootstrap/],
  ['host HTTP plane (routing, wire request, response write)', /runtime\/host\/http-plane|api\/invoke-semantics|api\/body/],
  ['function lane / pool / slot bookkeeping', /runtime\/host\/(function-lane|isolate-pool|isolate-slot|function-instance|budget)/],
  ['telemetry (metrics, logs to the control plane)', /invoke-telemetry|prom-client/],
  ['host channel (framed, V8 serialize)', /framed-channel|node:v8/],
  ['control plane hono app / routes', /hono|api\/(app|routes|errors)|function-service|function-registry/],
  ['node http (parser, server, response)', /node:_http|node:http|_http_/],
  ['node net / streams / timers', /node:(net|stream|internal\/streams|internal\/timers|timers|events|internal\/(net|stream_base))/],
];

function hopOf(node: Node): string {
  const { functionName, url } = node.callFrame;
  const where = url === '' ? functionName : url;
  for (const [hop, pattern] of HOPS) if (pattern.test(where) || pattern.test(functionName)) return hop;
  return url === '' ? `native: ${functionName}` : 'other js';
}

const args = process.argv.slice(2);
const topIndex = args.indexOf('--top');
const top = topIndex >= 0 ? Number(args[topIndex + 1]) : 25;
const lastIndex = args.indexOf('--last');
const lastS = lastIndex >= 0 ? Number(args[lastIndex + 1]) : Infinity;
const files = args.filter((a) => a.endsWith('.cpuprofile'));
for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  const fromUs = profile.endTime - profile.startTime - lastS * 1e6;
  let atUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    atUs += profile.timeDeltas[i] ?? 0;
    if (atUs < fromUs) continue;
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const totalUs = Math.min(profile.endTime - profile.startTime, lastS * 1e6);
  const hops = new Map<string, number>();
  const fns = new Map<string, number>();
  for (const [id, us] of self) {
    const node = byId.get(id)!;
    hops.set(hopOf(node), (hops.get(hopOf(node)) ?? 0) + us);
    const key = `${node.callFrame.functionName || '(anonymous)'} ${node.callFrame.url.replace(/^.*\/(w-http|main)\//, '').replace(/^file:\/\//, '')}:${node.callFrame.lineNumber + 1}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
  }
  const busyUs = totalUs - (hops.get('idle') ?? 0);
  console.log(`\n${file}: ${round(totalUs / 1e6, 2)} s profiled, ${round(busyUs / 1e6, 2)} s busy`);
  printTable('self time by hop (share of busy time)', [...hops].filter(([h]) => h !== 'idle').sort((a, b) => b[1] - a[1]).map(([hop, us]) => ({ hop, 'ms': round(us / 1000, 0), '%': round((100 * us) / busyUs, 1) })));
  printTable(`top ${top} functions by self time`, [...fns].filter(([fn]) => !fn.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, top).map(([fn, us]) => ({ function: fn.slice(0, 110), ms: round(us / 1000, 0), '%': round((100 * us) / busyUs, 1) })));
}
