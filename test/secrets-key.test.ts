/**
 * The operator's secrets key: AES-256-GCM sealing bound to a function name and version, key text
 * in base64 or hex, key files others can read refused, bad settings a stable code.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { SecretsKey, secretsAad } from '../runtime/secrets-key.ts';
import { tempDir } from './fixtures/platform.ts';

const dir = tempDir('tributary-key-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bytes = randomBytes(32);
const key = SecretsKey.parse(bytes.toString('base64'), 'test');

describe('SecretsKey', () => {
  it('opens what it sealed for the same function and version only', () => {
    const sealed = key.seal('{"API_KEY":"v"}', secretsAad('fn', 3));
    expect(sealed.alg).toBe('AES-256-GCM');
    expect(Buffer.from(sealed.data, 'base64').toString()).not.toContain('API_KEY');
    expect(key.open(sealed, secretsAad('fn', 3))).toBe('{"API_KEY":"v"}');
    expect(key.open(sealed, secretsAad('fn', 4))).toBeNull();
    expect(key.open(sealed, secretsAad('other', 3))).toBeNull();
    const flipped = Buffer.from(sealed.data, 'base64');
    flipped[0] ^= 1;
    expect(key.open({ ...sealed, data: flipped.toString('base64') }, secretsAad('fn', 3))).toBeNull();
    expect(SecretsKey.parse(randomBytes(32).toString('hex'), 'test').open(sealed, secretsAad('fn', 3))).toBeNull();
  });

  it('uses a fresh IV per seal', () => {
    const one = key.seal('same', secretsAad('fn', 1));
    const two = key.seal('same', secretsAad('fn', 1));
    expect(one.iv).not.toBe(two.iv);
    expect(one.data).not.toBe(two.data);
  });

  it('reads base64 and hex key text alike, with the same fingerprint', () => {
    expect(SecretsKey.parse(` ${bytes.toString('hex')}\n`, 'test').id).toBe(key.id);
    expect(SecretsKey.parse(bytes.toString('base64url'), 'test').id).toBe(key.id);
    expect(key.id).toMatch(/^[0-9a-f]{16}$/);
    expect(key.id).not.toBe(bytes.toString('hex').slice(0, 16));
  });

  it('refuses keys of the wrong size, unreadable files and files others may read', () => {
    for (const text of ['', 'short', randomBytes(16).toString('base64'), randomBytes(31).toString('hex')]) {
      expect(() => SecretsKey.parse(text, 'TRIBUTARY_SECRETS_KEY')).toThrow(expect.objectContaining({ code: 'ERR_SECRETS_KEY_INVALID' }));
    }
    expect(() => SecretsKey.load({ file: join(dir, 'missing.key') })).toThrow(expect.objectContaining({ code: 'ERR_SECRETS_KEY_INVALID', message: expect.stringContaining('ENOENT') }));
    const open = join(dir, 'open.key');
    writeFileSync(open, bytes.toString('base64'), { mode: 0o644 });
    expect(() => SecretsKey.load({ file: open })).toThrow(expect.objectContaining({ code: 'ERR_SECRETS_KEY_INVALID', message: expect.stringContaining('chmod 600') }));
    const good = join(dir, 'good.key');
    writeFileSync(good, bytes.toString('base64'), { mode: 0o600 });
    expect(SecretsKey.load({ file: good, env: randomBytes(32).toString('hex') })!.id).toBe(key.id);
    expect(SecretsKey.load({ env: bytes.toString('hex') })!.id).toBe(key.id);
    expect(SecretsKey.load({})).toBeUndefined();
  });

  it('stops serve at startup with ERR_SECRETS_KEY_INVALID, before anything starts', async () => {
    const cli = join(import.meta.dirname, '..', 'cli', 'tributary.ts');
    const missing = join(dir, 'nope.key');
    const failed = await promisify(execFile)(process.execPath, ['--no-node-snapshot', cli, 'serve', '--port', '0', '--data-dir', join(dir, 'data'), '--secrets-key-file', missing], {
      timeout: 30_000,
      env: { PATH: process.env.PATH ?? '' },
    }).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code?: number; stderr?: string }) => ({ code: error.code, stderr: error.stderr ?? '' }),
    );
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain(`tributary: ERR_SECRETS_KEY_INVALID: --secrets-key-file ${missing}: cannot read it (ENOENT)`);
    expect(existsSync(join(dir, 'data'))).toBe(false);
  });
});
