/**
 * The operator console's entry: asks for the management token when the platform wants one (kept
 * in sessionStorage, sent only as a header), then routes `#/graphs`, `#/graphs/{name}`,
 * `#/functions` and `#/functions/{name}` to their views. Platform errors show in a banner as
 * `code: message`, exactly as the API gave them.
 */
import { config, getJson, PlatformError, setToken, token } from './api.ts';
import { fill, h } from './dom.ts';
import { functionListView, functionView } from './functions-view.ts';
import { graphListView, graphView } from './graphs-view.ts';
import type { View, ViewContext } from './view.ts';

const root = document.getElementById('view')!;
const banner = document.getElementById('banner')!;
const nav = document.getElementById('nav')!;
const who = document.getElementById('who')!;
let current: View | null = null;
let authRequired = false;

function report(error: unknown): void {
  if (error === null) {
    banner.hidden = true;
    banner.replaceChildren();
    return;
  }
  banner.hidden = false;
  fill(banner, error instanceof PlatformError ? `${error.code}: ${error.message}` : `error: ${String((error as Error)?.message ?? error)}`);
}

const ctx: ViewContext = { root, report, unauthorized: () => login('The platform refused the token (ERR_UNAUTHORIZED): sign in again.') };

function stopView(): void {
  current?.stop();
  current = null;
}

function login(message: string | null): void {
  stopView();
  setToken(null);
  renderChrome();
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'current-password', required: true, placeholder: 'TRIBUTARY_TOKEN' });
  const problem = h('p', { class: 'error-text', id: 'login-error' }, message ?? '');
  const form = h(
    'form',
    {
      id: 'login',
      method: 'post', // never GET: a form that submits without the script must not put the token in a URL
      on: {
        submit: (event) => {
          event.preventDefault();
          setToken(input.value);
          // Check the token on a guarded route before showing anything.
          getJson('/v1/graphs')
            .then(() => route())
            .catch((error: unknown) => {
              setToken(null);
              fill(problem, error instanceof PlatformError ? `${error.code}: ${error.message}` : String(error));
            });
        },
      },
    },
    h('label', { for: 'token' }, 'Management token'),
    ' ',
    input,
    ' ',
    h('button', { type: 'submit' }, 'Sign in'),
  );
  fill(root, h('h1', {}, 'Sign in'), h('p', {}, 'This platform runs with a management token (TRIBUTARY_TOKEN). It stays in this tab (sessionStorage) and is sent only in the Authorization header.'), form, problem);
  input.focus();
}

function renderChrome(): void {
  const hash = location.hash;
  fill(
    nav,
    h('a', { href: '#/graphs', class: hash.startsWith('#/functions') ? '' : 'active' }, 'Graphs'),
    ' ',
    h('a', { href: '#/functions', class: hash.startsWith('#/functions') ? 'active' : '' }, 'Functions'),
  );
  fill(
    who,
    authRequired && token()
      ? h(
          'button',
          {
            id: 'logout',
            on: {
              click: () => {
                setToken(null);
                login(null);
              },
            },
          },
          'Sign out',
        )
      : null,
  );
}

function route(): void {
  if (authRequired && !token()) return login(null);
  stopView();
  report(null);
  renderChrome();
  const parts = location.hash.replace(/^#\/?/, '').split('/').map((p) => decodeURIComponent(p));
  if (parts[0] === 'functions') current = parts[1] ? functionView(ctx, parts[1]) : functionListView(ctx);
  else current = parts[1] ? graphView(ctx, parts[1]) : graphListView(ctx);
}

async function start(): Promise<void> {
  try {
    authRequired = (await config()).auth;
  } catch (error) {
    report(error);
    return;
  }
  window.addEventListener('hashchange', route);
  route();
}

void start();
