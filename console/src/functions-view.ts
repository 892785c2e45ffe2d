/**
 * Function pages: the list (latest version, kind, limits, invocations and errors by code, cold
 * starts, from /metrics), and one function: its versions, a live log tail (the last LOG_TAIL
 * lines, polled every second) and an invoke form.
 */
import { getJson, getText, invoke, PlatformError } from './api.ts';
import { fill, fmt, h } from './dom.ts';
import { parseMetrics, type Sample } from './metrics-text.ts';
import type { FunctionVersion, LogLine } from './types.ts';
import { poll, type View, type ViewContext } from './view.ts';

/** Log lines read per poll. */
export const LOG_TAIL = 100;

const enc = encodeURIComponent;

interface FunctionCounts {
  invocations: number;
  errors: Map<string, number>;
  coldStarts: number;
}

function countsOf(samples: Sample[]): Map<string, FunctionCounts> {
  const counts = new Map<string, FunctionCounts>();
  const of = (fn: string) => {
    let c = counts.get(fn);
    if (!c) counts.set(fn, (c = { invocations: 0, errors: new Map(), coldStarts: 0 }));
    return c;
  };
  for (const s of samples) {
    const fn = s.labels.function;
    if (fn === undefined) continue;
    if (s.name === 'tributary_invocations_total') {
      const c = of(fn);
      c.invocations += s.value;
      if (s.labels.outcome !== 'ok') c.errors.set(s.labels.outcome, (c.errors.get(s.labels.outcome) ?? 0) + s.value);
    } else if (s.name === 'tributary_cold_starts_total') of(fn).coldStarts += s.value;
  }
  return counts;
}

async function functionCounts(): Promise<Map<string, FunctionCounts>> {
  return countsOf(parseMetrics(await getText('/metrics'), ['tributary_invocations_total', 'tributary_cold_starts_total']));
}

function errorsText(c: FunctionCounts | undefined): string {
  if (!c || c.errors.size === 0) return '0';
  return [...c.errors].map(([code, n]) => `${code} ${fmt(n, 0)}`).join(', ');
}

export function functionListView(ctx: ViewContext): View {
  const body = h('tbody');
  fill(
    ctx.root,
    h('h1', {}, 'Functions'),
    h(
      'table',
      { class: 'list', id: 'function-list' },
      h('thead', {}, h('tr', {}, ...['name', 'version', 'kind', 'memory', 'timeout', 'cpu', 'invocations', 'errors by code', 'cold starts', 'deployed'].map((t) => h('th', {}, t)))),
      body,
    ),
  );
  return poll(ctx, 2000, async () => {
    const [{ functions }, counts] = await Promise.all([getJson<{ functions: FunctionVersion[] }>('/v1/functions'), functionCounts()]);
    fill(
      body,
      ...(functions.length
        ? functions.map((f) => {
            const c = counts.get(f.name);
            return h(
              'tr',
              { 'data-function': f.name },
              h('td', {}, h('a', { href: `#/functions/${enc(f.name)}` }, f.name)),
              h('td', { class: 'num' }, `v${f.version}`),
              h('td', {}, f.kind),
              h('td', { class: 'num' }, `${f.memoryLimitMb} MiB`),
              h('td', { class: 'num' }, `${f.timeoutMs} ms`),
              h('td', { class: 'num' }, `${f.cpuLimitMs} ms`),
              h('td', { class: 'num invocations' }, fmt(c?.invocations ?? 0, 0)),
              h('td', { class: 'errors' }, errorsText(c)),
              h('td', { class: 'num' }, fmt(c?.coldStarts ?? 0, 0)),
              h('td', {}, f.createdAt),
            );
          })
        : [h('tr', {}, h('td', { colspan: 10, class: 'muted' }, 'No functions deployed. tributary deploy <file.js> uploads one.'))]),
    );
  });
}

export function functionView(ctx: ViewContext, name: string): View {
  const summary = h('div', { id: 'function-summary' });
  const versions = h('tbody');
  const logs = h('pre', { class: 'logs', id: 'logs' });
  const method = h('select', { id: 'invoke-method' }, ...['GET', 'POST', 'PUT', 'DELETE'].map((m) => h('option', { value: m }, m)));
  const path = h('input', { id: 'invoke-path', placeholder: '/path?query', autocomplete: 'off' });
  const data = h('textarea', { id: 'invoke-body', rows: 3, placeholder: 'request body (POST, PUT)' });
  const result = h('pre', { class: 'invoke-result', id: 'invoke-result' });
  const form = h(
    'form',
    {
      id: 'invoke-form',
      on: {
        submit: (event) => {
          event.preventDefault();
          fill(result, '…');
          invoke(name, method.value, path.value, data.value)
            .then((r) => fill(result, `${r.status} ${r.contentType}\n\n${r.body}`))
            .catch((error: unknown) => fill(result, error instanceof PlatformError ? `${error.code}: ${error.message}` : String(error)));
        },
      },
    },
    method,
    ' ',
    path,
    h('br'),
    data,
    h('br'),
    h('button', { type: 'submit' }, 'Invoke'),
  );
  fill(
    ctx.root,
    h('p', {}, h('a', { href: '#/functions' }, '← functions')),
    h('h1', {}, name),
    summary,
    h('div', { class: 'columns' }, h('section', {}, h('h2', {}, `Log tail (last ${LOG_TAIL} lines)`), logs), h('section', {}, h('h2', {}, 'Invoke'), form, result)),
    h('h2', {}, 'Versions'),
    h('table', { class: 'list', id: 'versions' }, h('thead', {}, h('tr', {}, ...['version', 'kind', 'sha256', 'memory', 'timeout', 'cpu', 'deployed'].map((t) => h('th', {}, t)))), versions),
  );
  let ticks = 0;
  return poll(ctx, 1000, async () => {
    const [{ logs: lines }, counts] = await Promise.all([
      getJson<{ logs: LogLine[] }>(`/v1/functions/${enc(name)}/logs?limit=${LOG_TAIL}`),
      ticks % 3 === 0 ? functionCounts() : Promise.resolve(null),
    ]);
    const stick = logs.scrollTop + logs.clientHeight >= logs.scrollHeight - 4;
    fill(logs, ...(lines.length ? lines.map((l) => h('div', { class: `log ${l.level}` }, `${new Date(l.time).toISOString().slice(11, 23)} v${l.version} ${l.level.padEnd(5)} ${l.line}`)) : [h('span', { class: 'muted' }, 'No log lines yet.')]));
    if (stick) logs.scrollTop = logs.scrollHeight;
    if (ticks++ % 3 === 0) {
      const info = await getJson<FunctionVersion & { versions: FunctionVersion[] }>(`/v1/functions/${enc(name)}`);
      const c = counts?.get(name);
      fill(
        summary,
        h('p', {}, `v${info.version} · ${info.kind} · ${info.memoryLimitMb} MiB · timeout ${info.timeoutMs} ms · cpu ${info.cpuLimitMs} ms`),
        h('p', {}, `invocations ${fmt(c?.invocations ?? 0, 0)} · errors ${errorsText(c)} · cold starts ${fmt(c?.coldStarts ?? 0, 0)}`),
      );
      fill(
        versions,
        ...info.versions
          .slice()
          .reverse()
          .map((v) => h('tr', {}, h('td', { class: 'num' }, `v${v.version}`), h('td', {}, v.kind), h('td', { class: 'mono' }, v.sha256.slice(0, 12)), h('td', { class: 'num' }, `${v.memoryLimitMb} MiB`), h('td', { class: 'num' }, `${v.timeoutMs} ms`), h('td', { class: 'num' }, `${v.cpuLimitMs} ms`), h('td', {}, v.createdAt))),
      );
    }
  });
}
