/**
 * The operator's secrets key: the one 256-bit key every control plane sharing a bucket is given
 * (`serve --secrets-key-file PATH`, else $TRIBUTARY_SECRETS_KEY), with which functions' secrets
 * are sealed before they are written to the bucket (connectors/s3/shared-bindings.ts).
 *
 * Sealing is AES-256-GCM (NIST SP 800-38D) from node:crypto: a fresh random 96-bit IV per object,
 * a 128-bit tag, and additional authenticated data naming the function and version, so a sealed
 * object moved to another function or version fails to open instead of leaking into it. The key
 * text is 32 bytes in base64 (`openssl rand -base64 32`) or hex (64 digits); surrounding
 * whitespace is ignored. `id` is a one-way fingerprint of the key (HMAC-SHA-256 of a fixed label,
 * 16 hex digits): it is stored next to each sealed object so that a control plane holding another
 * key says "wrong key" rather than "tampered", and it reveals nothing usable about the key.
 *
 * @example
 *   const key = SecretsKey.load({ file: '/etc/tributary/secrets.key' });
 *   const sealed = key!.seal('{"API_KEY":"s3cr3t"}', secretsAad('my-fn', 3));
 *   key!.open(sealed, secretsAad('my-fn', 3)); // '{"API_KEY":"s3cr3t"}'
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { TributaryError } from './errors.ts';

export const SECRETS_KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const ALGORITHM = 'AES-256-GCM';

/** A sealed value as stored: base64 fields, the key's fingerprint. */
export interface SealedSecrets {
  alg: typeof ALGORITHM;
  keyId: string;
  iv: string;
  tag: string;
  data: string;
}

/** The additional authenticated data of one version's secrets. */
export function secretsAad(name: string, version: number): string {
  return `tributary/secrets/v1\u0000${name}\u0000${version}`;
}

function invalid(where: string, message: string): TributaryError {
  return new TributaryError('ERR_SECRETS_KEY_INVALID', `${where}: ${message}`);
}

export class SecretsKey {
  /** The key's fingerprint (safe to log and store). */
  readonly id: string;
  readonly #key: Buffer;

  private constructor(key: Buffer) {
    this.#key = key;
    this.id = createHmac('sha256', key).update('tributary secrets key id').digest('hex').slice(0, 16);
  }

  /** Parses key text (base64 or hex of 32 bytes); ERR_SECRETS_KEY_INVALID says where it came from. */
  static parse(text: string, where: string): SecretsKey {
    const trimmed = text.trim();
    let key: Buffer | null = null;
    if (/^[0-9a-fA-F]{64}$/.test(trimmed)) key = Buffer.from(trimmed, 'hex');
    else if (/^[A-Za-z0-9+/_-]{42,44}={0,2}$/.test(trimmed)) key = Buffer.from(trimmed, trimmed.includes('-') || trimmed.includes('_') ? 'base64url' : 'base64');
    if (key === null || key.length !== SECRETS_KEY_BYTES) throw invalid(where, `a secrets key is ${SECRETS_KEY_BYTES} bytes written in base64 or hex (make one with: openssl rand -base64 32)`);
    return new SecretsKey(key);
  }

  /**
   * The key from `file` if given, else from `env` (the value of $TRIBUTARY_SECRETS_KEY), else
   * undefined. A file others can read is refused: it holds the key to every function's secrets.
   */
  static load(options: { file?: string; env?: string }): SecretsKey | undefined {
    if (options.file !== undefined) {
      let text: string;
      try {
        if ((statSync(options.file).mode & 0o077) !== 0) throw invalid(`--secrets-key-file ${options.file}`, 'group or others may read it: chmod 600 it');
        text = readFileSync(options.file, 'utf8');
      } catch (error) {
        if (error instanceof TributaryError) throw error;
        throw invalid(`--secrets-key-file ${options.file}`, `cannot read it (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      return SecretsKey.parse(text, `--secrets-key-file ${options.file}`);
    }
    if (options.env !== undefined && options.env !== '') return SecretsKey.parse(options.env, 'TRIBUTARY_SECRETS_KEY');
    return undefined;
  }

  seal(plaintext: string, aad: string): SealedSecrets {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return { alg: ALGORITHM, keyId: this.id, iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: data.toString('base64') };
  }

  /** The plaintext, or null when `sealed` was not made by this key for `aad` (or was altered). */
  open(sealed: SealedSecrets, aad: string): string | null {
    try {
      const iv = Buffer.from(sealed.iv, 'base64');
      const tag = Buffer.from(sealed.tag, 'base64');
      if (sealed.alg !== ALGORITHM || iv.length !== IV_BYTES || tag.length !== TAG_BYTES) return null;
      const decipher = createDecipheriv('aes-256-gcm', this.#key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()]).toString('utf8');
    } catch {
      return null;
    }
  }
}
