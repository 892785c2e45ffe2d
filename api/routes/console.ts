/**
 * The operator console: `/` (the page), `/console/app.js` and `/console/console.css` (built from
 * console/ by esbuild on the first request, then kept), `/console/config.json` (whether the
 * management API wants a token, so the page asks for one before its first call). The assets hold
 * no data, so they are open; every number the page shows comes from the token-guarded API.
 *
 * The Content-Security-Policy allows scripts, styles and connections to this origin only: no
 * inline script runs, even one that slipped into the DOM (the console builds its DOM with
 * textContent and never parses tenant strings as HTML; CSP is the second wall).
 */
import { Hono, type Context } from 'hono';
import { buildConsole, type ConsoleAssets } from '../../console/build.ts';

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export interface ConsoleOptions {
  /** True when the management API requires `Authorization: Bearer <token>`. */
  auth: boolean;
}

export function consoleRoutes(options: ConsoleOptions): Hono {
  const app = new Hono();
  let assets: Promise<ConsoleAssets> | null = null;
  const load = () => {
    assets ??= buildConsole().catch((error) => {
      assets = null; // a failed build is retried by the next request
      throw error;
    });
    return assets;
  };
  const send = (c: Context, body: string, type: string) =>
    c.body(body, 200, {
      'content-type': type,
      'content-security-policy': CSP,
      'x-content-type-options': 'nosniff',
      'referrer-policy': 'no-referrer',
      'cache-control': 'no-cache',
    });

  app.get('/', async (c) => send(c, (await load()).html, 'text/html; charset=utf-8'));
  app.get('/console/app.js', async (c) => send(c, (await load()).js, 'text/javascript; charset=utf-8'));
  app.get('/console/console.css', async (c) => send(c, (await load()).css, 'text/css; charset=utf-8'));
  app.get('/console/config.json', (c) => c.json({ auth: options.auth }));
  app.get('/favicon.ico', (c) => c.body(null, 204));
  return app;
}
