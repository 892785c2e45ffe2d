import { describe, expect, it } from 'vitest';
import { plainUrlParts } from '../api/invoke-semantics.ts';

/** What the HTTP plane would get from URL for the same request. */
function viaUrl(host: string, path: string) {
  try {
    const url = new URL(`http://${host}${path}`);
    return { origin: url.origin, pathname: url.pathname, search: url.search };
  } catch {
    return 'invalid';
  }
}

describe('plainUrlParts (the HTTP plane without new URL)', () => {
  const hosts = ['localhost', 'localhost:3000', '127.0.0.1:8080', 'a.b-c.example', 'LOCALHOST', 'x:80', 'x:080', 'x:', 'x:65536', '1.2', '0x7f.1', 'a.1', '127.000.0.1', '256.1.1.1', 'a..b', 'a.', 'xn--a', 'xn--nxasmq6b.com', '-a-', '[::1]:3000', 'é.com'];
  const paths = ['/', '/v1/invoke/f', '/v1/invoke/f/a/b?q=1&r=x+y', '/v1/invoke/f?', '/v1/invoke/f/?a=%zz', '/v1/invoke/f/./x', '/v1/invoke/f/../g', '/v1/invoke/f/%2e%2e/g', '/v1/invoke/f/a b', "/v1/invoke/f?it's", '/v1/invoke/f/a\\b', '/v1/invoke/f/ü', '/v1/invoke/f?x=ü', '/v1/invoke/f/a.b/c.', '/v1/invoke/f?a=/./', '/v1/invoke/f/{x}', '/v1/invoke/f#h', '/v1/invoke/f/a|b'];

  it('gives exactly what URL gives, or declines', () => {
    let taken = 0;
    for (const host of hosts) {
      for (const path of paths) {
        const fast = plainUrlParts(host, path);
        if (fast === null) continue;
        taken++;
        expect(fast, `${host} ${path}`).toEqual(viaUrl(host, path));
      }
    }
    // The common requests take the fast path.
    expect(plainUrlParts('localhost:3000', '/v1/invoke/f/a/b?q=1')).not.toBeNull();
    expect(plainUrlParts('127.0.0.1:8080', '/v1/invoke/f')).not.toBeNull();
    expect(taken).toBeGreaterThan(20);
  });

  it('agrees with URL on random paths and hosts', () => {
    const alphabet = "aZ09-._~!$&'()*+,;=:@/?%#\\ .|^`{}[]éx";
    const hostAlphabet = 'az09.-:xnAZ';
    let seed = 12345;
    const next = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed % n);
    for (let i = 0; i < 5000; i++) {
      let path = '/';
      for (let j = next(12); j > 0; j--) path += alphabet[next(alphabet.length)];
      let host = '';
      for (let j = 1 + next(10); j > 0; j--) host += hostAlphabet[next(hostAlphabet.length)];
      const fast = plainUrlParts(host, path);
      if (fast !== null) expect(fast, `${host} ${path}`).toEqual(viaUrl(host, path));
    }
  });
});
