/**
 * Function versions' bindings in the shared bucket, so that every control plane serves a version
 * with the same `env`:
 *
 *   deploy/bindings/<name>/<version, 12 digits>-<uuid>.json
 *
 * One object per deployed version with bindings, written before the deploy event that names it
 * (deployment-log.ts) and deleted when that version is pruned or its function deleted. Vars and
 * bucket bindings are stored as they are (they are configuration, not credentials); secrets are
 * sealed with the operator's key (runtime/secrets-key.ts, AES-256-GCM, the function name and
 * version as additional authenticated data) and never written in plaintext: a deploy with secrets
 * and no key is refused before anything is written (ERR_SECRETS_KEY_REQUIRED).
 *
 * The uuid keeps two control planes racing for one version number from writing the same key; the
 * loser deletes its object, and one left by a crash in between goes with its version number.
 */
import { randomUUID } from 'node:crypto';
import { TributaryError } from '../../runtime/errors.ts';
import { parseBindings, type Bindings } from '../../runtime/function-bindings.ts';
import { secretsAad, type SealedSecrets, type SecretsKey } from '../../runtime/secrets-key.ts';
import type { Bucket } from './bucket.ts';

const PREFIX = 'deploy/bindings/';
const VERSION_DIGITS = 12;
const OBJECT_KEY = /^deploy\/bindings\/[^/]+\/(\d{12})-[0-9a-f-]{36}\.json$/;

/** What one bindings object holds. */
interface StoredBindings {
  format: 1;
  name: string;
  version: number;
  vars: Record<string, string>;
  buckets?: Bindings['buckets'];
  /** Absent when the version has no secrets. */
  secrets?: SealedSecrets;
}

export interface SharedBindingsOptions {
  bucket: Bucket;
  /** The operator's secrets key; without one, versions with secrets can neither be deployed nor served. */
  key?: SecretsKey;
}

function unavailable(message: string): TributaryError {
  return new TributaryError('ERR_SECRETS_UNAVAILABLE', message);
}

export class SharedBindings {
  private readonly options: SharedBindingsOptions;

  constructor(options: SharedBindingsOptions) {
    this.options = options;
  }

  /** Throws ERR_SECRETS_KEY_REQUIRED when `bindings` has secrets and there is no key to seal them with. */
  assertStorable(bindings: Bindings | undefined): void {
    if (bindings && Object.keys(bindings.secrets).length > 0 && this.options.key === undefined) {
      throw new TributaryError(
        'ERR_SECRETS_KEY_REQUIRED',
        'deployments are shared through a bucket and this control plane has no secrets key to seal secrets with: start it with --secrets-key-file PATH (or $TRIBUTARY_SECRETS_KEY), the same key on every control plane; nothing was deployed',
      );
    }
  }

  /** Writes version `version` of `name`'s bindings; returns the object's key. */
  async put(name: string, version: number, bindings: Bindings): Promise<string> {
    this.assertStorable(bindings);
    const stored: StoredBindings = { format: 1, name, version, vars: bindings.vars };
    if (bindings.buckets) stored.buckets = bindings.buckets;
    if (Object.keys(bindings.secrets).length > 0) stored.secrets = this.options.key!.seal(JSON.stringify(bindings.secrets), secretsAad(name, version));
    const key = `${PREFIX}${name}/${String(version).padStart(VERSION_DIGITS, '0')}-${randomUUID()}.json`;
    await this.options.bucket.put(key, JSON.stringify(stored), 'application/json');
    return key;
  }

  /**
   * The bindings in `key`, which must be version `version` of `name`'s. ERR_SECRETS_UNAVAILABLE
   * when they cannot be had here (gone, altered, sealed with another key or none configured);
   * ERR_S3_UNAVAILABLE when the bucket fails (worth retrying). The message never holds a value.
   */
  async fetch(key: string, name: string, version: number): Promise<Bindings> {
    const bytes = await this.options.bucket.get(key);
    if (bytes === null) throw unavailable(`the bindings of '${name}' v${version} are no longer in the bucket (the version was pruned or deleted)`);
    let stored: StoredBindings;
    try {
      stored = JSON.parse(Buffer.from(bytes).toString('utf8')) as StoredBindings;
    } catch {
      throw unavailable(`the bindings object of '${name}' v${version} is not valid JSON`);
    }
    if (stored.format !== 1 || stored.name !== name || stored.version !== version) throw unavailable(`the bindings object of '${name}' v${version} belongs to another version`);
    let secrets: unknown = {};
    if (stored.secrets !== undefined) {
      const { key: secretsKey } = this.options;
      if (secretsKey === undefined) throw unavailable(`the secrets of '${name}' v${version} are sealed with key ${stored.secrets.keyId} and this control plane has no secrets key (--secrets-key-file)`);
      const opened = secretsKey.open(stored.secrets, secretsAad(name, version));
      if (opened === null) {
        throw unavailable(
          stored.secrets.keyId === secretsKey.id
            ? `the sealed secrets of '${name}' v${version} fail authentication (altered, or moved from another version)`
            : `the secrets of '${name}' v${version} are sealed with key ${stored.secrets.keyId}, this control plane has key ${secretsKey.id}: give every control plane the same --secrets-key-file`,
        );
      }
      secrets = JSON.parse(opened);
    }
    try {
      return parseBindings(stored.vars, secrets, stored.buckets) ?? { vars: {}, secrets: {} };
    } catch (error) {
      throw unavailable(`the bindings object of '${name}' v${version} is invalid: ${(error as Error).message}`);
    }
  }

  /** Deletes `key` (a deploy that lost the race for its version number). */
  async discard(key: string): Promise<void> {
    await this.options.bucket.delete([key]);
  }

  /** Deletes the bindings objects of `name`'s versions that `doomed` selects (pruned, or all up to a delete). */
  async remove(name: string, doomed: (version: number) => boolean): Promise<void> {
    const keys = (await this.options.bucket.list(`${PREFIX}${name}/`)).filter((key) => {
      const match = OBJECT_KEY.exec(key);
      return match !== null && doomed(Number(match[1]));
    });
    if (keys.length > 0) await this.options.bucket.delete(keys);
  }
}
