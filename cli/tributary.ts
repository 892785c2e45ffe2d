#!/usr/bin/env -S node --no-node-snapshot
/**
 * The `tributary` command line: `serve` runs the platform; the other commands talk to a running
 * one at --url (default $TRIBUTARY_URL or http://127.0.0.1:8787), the management ones with
 * $TRIBUTARY_TOKEN if set. `invoke` never sends the token: the request reaches a tenant's function.
 */
import { readFileSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { anonymous, client, common, intFlag, need, reading, UsageError, type Command, type CommandGroup } from './command.ts';
import { request } from './client.ts';
import { DEPLOY_OPTIONS, DEPLOY_USAGE, deployCommand } from './deploy.ts';
import { dev } from './dev.ts';
import { graphCommands } from './graph.ts';
import { logs } from './logs.ts';
import { main } from './main.ts';

function durabilityFlag(value: unknown): 'process-crash' | 'fsync' | undefined {
  if (value === undefined || value === 'process-crash' || value === 'fsync') return value;
  throw new UsageError(`--durability must be process-crash or fsync, got '${String(value).slice(0, 40)}'`);
}

const commands: Record<string, Command | CommandGroup> = {
  serve: {
    usage:
      'tributary serve [--port 8787] [--host 127.0.0.1] [--data-dir ./.tributary] [--hosts N] [--with-examples]\n' +
      '                [--durability process-crash|fsync]   what a log commit survives (default process-crash)\n' +
      '                [--host-memory-limit-mb N]   recycle a host process whose RSS passes N MiB (default 75% of RAM / hosts)\n' +
      '                [--s3-bucket NAME [--s3-endpoint URL]]   state and deployments in S3; region and\n' +
      '                credentials from AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)\n' +
      '                [--secrets-key-file PATH]   key sealing functions\' secrets in the S3 bucket, the same on every control plane\n' +
      '                (32 bytes base64/hex, mode 0600: openssl rand -base64 32; default $TRIBUTARY_SECRETS_KEY)\n' +
      '                [--kafka-brokers host:port,...]   Kafka edges (default $TRIBUTARY_KAFKA_BROKERS or 127.0.0.1:9092)\n' +
      '                [--user-buckets a,b [--s3-endpoint URL]]   buckets functions may bind and S3 sinks may write (default $TRIBUTARY_USER_BUCKETS)',
    summary: 'run the platform (control plane + isolate host processes)',
    options: {
      port: { type: 'string', default: '8787' },
      host: { type: 'string', default: '127.0.0.1' },
      'data-dir': { type: 'string', default: './.tributary' },
      hosts: { type: 'string' },
      'host-memory-limit-mb': { type: 'string' },
      durability: { type: 'string' },
      'with-examples': { type: 'boolean', default: false },
      's3-bucket': { type: 'string' },
      's3-endpoint': { type: 'string' },
      'secrets-key-file': { type: 'string' },
      'user-buckets': { type: 'string' },
      'kafka-brokers': { type: 'string' },
      help: common.help,
    },
    async run({ values }) {
      if (values['s3-endpoint'] !== undefined && values['s3-bucket'] === undefined && values['user-buckets'] === undefined) throw new UsageError('--s3-endpoint needs --s3-bucket or --user-buckets');
      const userBuckets = values['user-buckets'] === undefined ? undefined : String(values['user-buckets']).split(',').map((b) => b.trim()).filter((b) => b !== '');
      const { startServer } = await import('../api/server.ts');
      const server = await startServer({
        port: intFlag(values, 'port', 0, 65535),
        host: String(values.host),
        dataDir: String(values['data-dir']),
        hosts: intFlag(values, 'hosts', 1, 256),
        hostMemoryLimitMb: intFlag(values, 'host-memory-limit-mb', 64, 1024 * 1024),
        durability: durabilityFlag(values.durability),
        kafkaBrokers: values['kafka-brokers'] as string | undefined,
        secretsKeyFile: values['secrets-key-file'] as string | undefined,
        s3: values['s3-bucket'] === undefined ? undefined : { bucket: String(values['s3-bucket']), endpoint: values['s3-endpoint'] as string | undefined },
        ...(userBuckets ? { userBuckets: { buckets: userBuckets, endpoint: values['s3-endpoint'] as string | undefined } } : {}),
      });
      if (values['with-examples']) {
        const { deployExamples, startWordCountDemo } = await import('./examples.ts');
        const names = await deployExamples(server.platform.functions);
        await startWordCountDemo(server.platform.graphs);
        console.log(`deployed examples: ${names.join(', ')}; graph 'wordcount' fed 5 lines/s`);
      }
      console.log(`tributary listening on ${server.url} (data dir ${server.platform.dataDir})`);
      if (values['s3-bucket'] !== undefined) console.log(`state and deployments in s3://${values['s3-bucket']} (${values['s3-endpoint'] ?? 'AWS S3'})`);
      console.log(`console: ${server.url}/   (CLI: tributary graph ls, graph status wordcount, logs hello --follow)`);
      console.log(`try: curl '${server.url}/v1/invoke/hello?name=Ada'`);
      if (values['with-examples']) console.log(`     curl '${server.url}/v1/graphs/wordcount/sinks/counts?limit=20'`);
      const stop = () => void server.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    },
  },
  deploy: {
    usage: DEPLOY_USAGE,
    summary: 'bundle (esbuild) and upload a function with its vars and secrets (a new version if it exists)',
    options: { ...common, ...DEPLOY_OPTIONS },
    run: ({ values, positionals }) => deployCommand(values, positionals),
  },
  invoke: {
    usage: 'tributary invoke <name> [--data BODY] [--method POST] [--path /sub/path]',
    summary: 'call a function over HTTP and print its response body',
    options: { ...common, data: { type: 'string', short: 'd' }, method: { type: 'string', short: 'X' }, path: { type: 'string', default: '' } },
    async run({ values, positionals }) {
      const name = need(positionals, 0, 'name');
      const method = String(values.method ?? (values.data === undefined ? 'GET' : 'POST'));
      const res = await request(anonymous(values), method, `/v1/invoke/${encodeURIComponent(name)}${values.path}`, {
        body: values.data === undefined ? undefined : String(values.data),
      });
      process.stdout.write(Buffer.from(await res.arrayBuffer()));
    },
  },
  list: {
    usage: 'tributary list [--json]',
    summary: 'list deployed functions (latest versions)',
    options: reading,
    async run({ values }) {
      const answer = (await (await request(client(values), 'GET', '/v1/functions')).json()) as {
        functions: Array<{ name: string; version: number; kind: string; createdAt: string }>;
      };
      if (values.json) return console.log(JSON.stringify(answer, null, 2));
      for (const f of answer.functions) console.log(`${f.name}\tv${f.version}\t${f.kind}\t${f.createdAt}`);
    },
  },
  rm: {
    usage: 'tributary rm <name>',
    summary: 'delete a function and all its versions',
    options: common,
    async run({ values, positionals }) {
      const name = need(positionals, 0, 'name');
      await request(client(values), 'DELETE', `/v1/functions/${encodeURIComponent(name)}`);
      console.log(`deleted ${name}`);
    },
  },
  logs,
  graph: graphCommands,
  dev,
};

const code = await main(commands, process.argv.slice(2));
if (code !== 0 || process.argv[2] !== 'serve') process.exitCode = code;
