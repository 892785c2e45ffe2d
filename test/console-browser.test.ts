/**
 * The operator console in a real browser: headless Chromium (Debian's) driven by puppeteer-core
 * against a real server on a socket, with a management token. It signs in, draws the WordCount
 * graph with live numbers, shows a poison record's dead letter and the function's logs — both
 * carrying an XSS attempt that must stay text — and invokes a function. Screenshots in
 * test-artifacts/console/.
 */
import { rmSync } from 'node:fs';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../api/server.ts';
import { deployExamples, startWordCountDemo } from '../cli/examples.ts';
import { collectErrors, launchBrowser, screenshot } from './fixtures/browser.ts';
import { tempDir } from './fixtures/platform.ts';

// The callbacks of page.evaluate/waitForFunction run in the page; the root tsconfig has no DOM lib.
declare const document: { querySelector(selector: string): { textContent: string | null } | null; querySelectorAll(selector: string): { length: number } };
declare const window: unknown;
declare const sessionStorage: { getItem(key: string): string | null };

const TOKEN = `console-test-${Math.random().toString(36).slice(2)}`;
const XSS = `<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>`;
const dataDir = tempDir();
let server: RunningServer;
let browser: Browser;
let stopDemo: () => void;

async function api(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${TOKEN}`);
  return fetch(`${server.url}${path}`, { ...init, headers });
}

/** A page signed in with the token, collecting its errors. */
async function signedIn(hash: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 1000 });
  const errors = collectErrors(page);
  await page.goto(`${server.url}/${hash}`, { waitUntil: 'load' });
  await page.waitForSelector('form#login input#token');
  await page.type('input#token', TOKEN);
  await page.click('form#login button[type=submit]');
  await page.waitForFunction(() => !document.querySelector('form#login'), { timeout: 20_000 });
  return { page, errors };
}

beforeAll(async () => {
  // Two hosts: the autoscaler never adds a replica beyond the host count (no capacity it would add).
  server = await startServer({ port: 0, dataDir, hosts: 2, token: TOKEN });
  await deployExamples(server.platform.functions);
  stopDemo = await startWordCountDemo(server.platform.graphs);
  browser = await launchBrowser();
}, 120_000);

afterAll(async () => {
  stopDemo?.();
  await browser?.close();
  await server?.close();
  rmSync(dataDir, { recursive: true, force: true });
}, 60_000);

describe('operator console in headless Chromium', () => {
  it('asks for the token, refuses a wrong one plainly, keeps it out of the URL, then signs in', async () => {
    const page = await browser.newPage();
    const errors = collectErrors(page);
    await page.goto(`${server.url}/`, { waitUntil: 'load' });
    await page.waitForSelector('form#login input#token');
    await screenshot(page, 'login');
    await page.type('input#token', 'wrong-token');
    await page.click('form#login button[type=submit]');
    await page.waitForFunction(() => document.querySelector('#login-error')?.textContent?.includes('ERR_UNAUTHORIZED'), { timeout: 20_000 });
    expect(await page.$eval('#login-error', (el) => el.textContent)).toBe('ERR_UNAUTHORIZED: invalid token');

    await page.$eval('input#token', (el) => ((el as unknown as { value: string }).value = ''));
    await page.type('input#token', TOKEN);
    await page.click('form#login button[type=submit]');
    await page.waitForSelector('#graph-list a[href="#/graphs/wordcount"]', { timeout: 20_000 });
    expect(page.url()).not.toContain(TOKEN);
    expect(page.url()).not.toContain('wrong-token');
    expect(await page.evaluate(() => sessionStorage.getItem('tributary.token'))).toBe(TOKEN);
    // The one error is the browser's report of the refused sign-in (401).
    expect(errors.filter((e) => !/401/.test(e))).toEqual([]);

    await page.click('#logout');
    await page.waitForSelector('form#login');
    expect(await page.evaluate(() => sessionStorage.getItem('tributary.token'))).toBeNull();
    await page.close();
  }, 90_000);

  it('draws the WordCount graph as a DAG with live numbers and no console errors', async () => {
    const { page, errors } = await signedIn('#/graphs/wordcount');
    await page.waitForSelector('svg.dag [data-vertex="count"]', { timeout: 20_000 });
    for (const vertex of ['lines', 'split', 'count', 'counts']) expect(await page.$(`svg.dag [data-vertex="${vertex}"]`)).not.toBeNull();
    expect(await page.$eval('svg.dag [data-edge="split->count"]', (el) => el.textContent)).toMatch(/exactly-once.*lag \d+/);

    // Live: the processed count of a node grows while the page is open, and rates are numbers.
    const processed = () => page.$eval('#nodes tr[data-node="count"] td.processed', (el) => Number(el.textContent!.replace(/,/g, '')));
    const first = await processed();
    await page.waitForFunction((before) => Number(document.querySelector('#nodes tr[data-node="count"] td.processed')!.textContent!.replace(/,/g, '')) > before, { timeout: 30_000 }, first);
    await page.waitForFunction(() => /^[0-9.,]+$/.test(document.querySelector('#nodes tr[data-node="count"] td.rate-in')!.textContent!.trim()), { timeout: 30_000 });
    expect(await page.$eval('#nodes tr[data-node="split"] td.replicas', (el) => el.textContent)).toMatch(/^\d+ \(1–2\)$/);
    expect(await page.$eval('#e2e', (el) => el.textContent)).toMatch(/SLO p99 ≤ 100 ms/);
    await page.waitForFunction(() => document.querySelectorAll('#decisions li.decision').length > 0, { timeout: 30_000 });
    await page.waitForFunction(() => document.querySelectorAll('#sink-tail tbody tr td.value').length > 0, { timeout: 30_000 });
    expect(await page.$eval('#sink-tail tbody tr td.value', (el) => el.textContent)).toMatch(/"count":\d+/);
    await screenshot(page, 'wordcount');
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);

  it('shows a poison record as a dead letter with its error, and tenant strings stay text', async () => {
    const source = `export default { process(record) { console.log('saw ' + record.value); if (String(record.value).includes('poison')) throw new Error('refused ' + record.value); return record.value; } };`;
    expect((await api('/v1/functions/picky', { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: source })).status).toBe(201);
    const spec = {
      nodes: [{ id: 'check', function: 'picky' }],
      sources: [{ id: 'in', type: 'http' }],
      sinks: [{ id: 'out', type: 'log' }],
      edges: [
        { from: 'in', to: 'check', delivery: 'at-least-once' },
        { from: 'check', to: 'out', delivery: 'at-least-once' },
      ],
    };
    expect((await api('/v1/graphs/poisoned', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) })).status).toBe(201);
    const records = [{ value: 'fine' }, { value: `poison ${XSS}` }];
    expect((await api('/v1/graphs/poisoned/sources/in', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(records) })).status).toBe(202);

    const { page, errors } = await signedIn('#/graphs/poisoned');
    await page.waitForSelector('#dead-letters tr.dead-letter', { timeout: 60_000 });
    const row = await page.$eval('#dead-letters tr.dead-letter', (el) => ({ text: el.textContent ?? '', images: el.querySelectorAll('img, script').length }));
    expect(row.text).toContain('refused poison <img src=x onerror=');
    expect(row.text).toContain('check');
    expect(row.images).toBe(0);
    await page.waitForFunction(() => /☠ 1/.test(document.querySelector('svg.dag [data-vertex="check"]')?.textContent ?? ''), { timeout: 20_000 });
    await screenshot(page, 'dead-letter');

    // The function's log tail holds the same hostile string, as text.
    await page.goto(`${server.url}/#/functions/picky`, { waitUntil: 'load' });
    await page.waitForFunction(() => (document.querySelector('#logs')?.textContent ?? '').includes('saw poison <img'), { timeout: 30_000 });
    expect(await page.$$eval('#logs img, #logs script, #dead-letters img', (els) => els.length)).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
    await screenshot(page, 'function-logs');
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);

  it("shows the autoscaler's scale-up in the decisions timeline, with its reason", async () => {
    const burn = `export default { process(r) { const end = Date.now() + 1; while (Date.now() < end) {} return r.value; } };`;
    expect((await api('/v1/functions/burn?timeoutMs=10000', { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: burn })).status).toBe(201);
    const spec = {
      nodes: [{ id: 'hot', function: 'burn', replicas: { min: 1, max: 4 } }],
      sources: [{ id: 'in', type: 'http' }],
      sinks: [{ id: 'out', type: 'log' }],
      edges: [
        { from: 'in', to: 'hot', delivery: 'exactly-once', partitionBy: 'key' },
        { from: 'hot', to: 'out', delivery: 'exactly-once' },
      ],
      slo: { latencyMs: 250, percentile: 99 },
    };
    expect((await api('/v1/graphs/burst', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) })).status).toBe(201);
    const { page, errors } = await signedIn('#/graphs/burst');
    let key = 0;
    let scaled = false;
    const deadline = Date.now() + 60_000;
    // ~1500 records/s at 1 ms each, until the page shows the scale-up.
    while (!scaled && Date.now() < deadline) {
      const body = JSON.stringify(Array.from({ length: 75 }, () => ({ key: `k${key++ % 16}`, value: key })));
      const res = await api('/v1/graphs/burst/sources/in', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      expect([202, 429]).toContain(res.status);
      await new Promise((r) => setTimeout(r, 50));
      scaled = await page.evaluate(() => document.querySelectorAll('#decisions li.decision.up').length > 0);
    }
    expect(scaled).toBe(true);
    expect(await page.$eval('#decisions li.decision.up', (el) => el.textContent)).toMatch(/hot up 1→[2-4] \S+/);
    await screenshot(page, 'scale-up');
    expect(errors).toEqual([]);
    await page.close();
    expect((await api('/v1/graphs/burst', { method: 'DELETE' })).status).toBe(204);
  }, 120_000);

  it("shows the platform's own error plainly", async () => {
    const { page, errors } = await signedIn('#/graphs/no-such-graph');
    await page.waitForFunction(() => (document.querySelector('#banner')?.textContent ?? '').length > 0, { timeout: 20_000 });
    expect(await page.$eval('#banner', (el) => el.textContent)).toBe("ERR_NOT_FOUND: no graph named 'no-such-graph'");
    // The browser reports the 404 it got; nothing else went wrong.
    expect(errors.filter((e) => !/404/.test(e))).toEqual([]);
    await page.close();
  }, 60_000);

  it('lists functions with kind, limits, invocations and errors by code, and invokes one from the form', async () => {
    const thrower = `export default { fetch() { throw new Error('nope'); } };`;
    expect((await api('/v1/functions/thrower', { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: thrower })).status).toBe(201);
    expect((await fetch(`${server.url}/v1/invoke/thrower`)).status).toBeGreaterThanOrEqual(500);
    const { page, errors } = await signedIn('#/functions');
    await page.waitForFunction(() => /^ERR_[A-Z_]+ 1$/.test(document.querySelector('#function-list tr[data-function="thrower"] td.errors')?.textContent ?? ''), { timeout: 20_000 });
    await page.waitForSelector('#function-list tr[data-function="hello"]', { timeout: 20_000 });
    const cells = await page.$$eval('#function-list tr[data-function="hello"] td', (tds) => tds.map((td) => td.textContent));
    expect(cells.slice(0, 6)).toEqual(['hello', 'v1', 'js', '128 MiB', '1000 ms', '1000 ms']);
    await page.click('#function-list tr[data-function="hello"] a');
    await page.waitForSelector('#invoke-form');
    await page.type('#invoke-path', '?name=Ada');
    await page.click('#invoke-form button[type=submit]');
    await page.waitForFunction(() => (document.querySelector('#invoke-result')?.textContent ?? '').includes('Hello, Ada!'), { timeout: 20_000 });
    expect(await page.$eval('#invoke-result', (el) => el.textContent)).toMatch(/^200 /);
    await page.waitForFunction(() => /invocations [1-9]/.test(document.querySelector('#function-summary')?.textContent ?? ''), { timeout: 20_000 });
    await page.waitForSelector('#versions tbody tr');
    await screenshot(page, 'function');
    expect(errors).toEqual([]);
    await page.close();
  }, 90_000);
});
