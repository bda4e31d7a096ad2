/**
 * `mm-ingest doctor`: checks Redis, the bucket, Qdrant and the API key before an overnight
 * run (../doctor.ts runs the checks, ../doctor/ holds one module a service). Exit 0 without
 * fail rows, 1 with any, 2 for a configuration error (a malformed flag or variable, an
 * unknown model or dimension).
 */
import { InvalidArgumentError } from 'commander';
import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { embeddingClient, objectStore, redisConnection, vectorStore } from '../connections.js';
import { doctorCounts, formatDoctor, redactRows, runDoctor } from '../doctor.js';
import { maskUrl, urlPassword } from '../redact.js';
import type { DoctorRedis } from '../doctor/rows.js';
import { resolveDimension, resolveModel } from '../models.js';
import { privateEndpointReason } from '../media-urls.js';
import { positiveInt, withConnectionFlags } from './options.js';

interface DoctorFlags {
  bucket: string;
  prefix: string;
  collection: string;
  model: string;
  dimension?: number;
  api: boolean;
  json?: boolean;
  timeout: number;
  [flag: string]: unknown;
}

function timeoutSeconds(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > 600)
    throw new InvalidArgumentError(`--timeout must be seconds in (0, 600], got "${v}"`);
  return n;
}

/** What the probe needs of the pipeline's connection (a single Redis or a cluster alike). */
interface ProbedConnection {
  info(): Promise<string>;
  on(event: 'error', listener: (err: Error) => void): unknown;
  once(event: 'error', listener: (err: Error) => void): unknown;
  off(event: 'error', listener: (err: Error) => void): unknown;
  disconnect(): void;
}

/**
 * INFO over the pipeline's own connection, failing at the first connection error: that
 * connection retries forever (what BullMQ needs), which would make an unreachable Redis
 * look like a slow one.
 */
function redisProbe(connection: ProbedConnection): DoctorRedis {
  return {
    info: () =>
      new Promise<string>((resolve, reject) => {
        const onError = (err: Error): void => reject(err);
        connection.once('error', onError);
        connection
          .info()
          .then(resolve, reject)
          .finally(() => connection.off('error', onError));
      }),
  };
}

const write = (text: string): Promise<void> => new Promise((resolve) => process.stdout.write(text, () => resolve()));

export function registerDoctorCommand(program: Command): void {
  withConnectionFlags(
    program
      .command('doctor')
      .description(
        'check Redis, the bucket, Qdrant and the API key before a run: a table of ok / warn / fail with what to do; exit 1 on any fail',
      )
      .requiredOption('--bucket <name>', 'the S3 bucket the run will index')
      .option('--prefix <prefix>', 'only keys under this prefix', '')
      .requiredOption('--collection <name>', 'the Qdrant collection (or alias) the run will write')
      .requiredOption('--model <name>', 'the embedding model')
      .option('--dimension <n>', "vector dimension (default: the model's)", positiveInt('--dimension'))
      .option('--no-api', 'do not send the one-word request that checks the API key')
      .option('--timeout <seconds>', 'bound of each check (default 5)', timeoutSeconds, 5)
      .option('--json', 'machine-readable output'),
  ).action(async (flags: DoctorFlags) => {
    const config = loadConfig(process.env, flags);
    const model = resolveModel(flags.model, config.models);
    const dimension = resolveDimension(model, flags.dimension);
    const timeoutMs = Math.round(flags.timeout * 1000);
    const connection: ProbedConnection = redisConnection(config);
    // later connection errors (it keeps reconnecting until closed) are the probe's business, not stderr's
    connection.on('error', () => {});
    let rows;
    try {
      rows = await runDoctor(
        {
          redis: redisProbe(connection),
          objects: objectStore(config),
          vectors: vectorStore(config),
          embedder: config.apiKey ? embeddingClient(config, { apiKey: config.apiKey, timeoutMs }) : undefined,
        },
        {
          redisUrl: maskUrl(config.redisUrl),
          s3Endpoint: config.s3Endpoint === '' ? `AWS S3 (${config.awsRegion})` : maskUrl(config.s3Endpoint),
          qdrantUrl: maskUrl(config.qdrantUrl),
          baseUrl: maskUrl(config.baseUrl),
          bucket: flags.bucket,
          prefix: flags.prefix,
          collection: flags.collection,
          model,
          dimension,
          api: flags.api,
          timeoutMs,
          mediaUrls: {
            reason: await privateEndpointReason(config.s3Endpoint),
            imageMode: config.imageMode,
            allowed: config.allowPrivateMediaUrls,
          },
        },
      );
    } finally {
      connection.disconnect();
    }
    rows = redactRows(rows, [
      config.apiKey,
      config.qdrantApiKey,
      process.env.AWS_SECRET_ACCESS_KEY,
      ...urlPassword(config.redisUrl),
      ...urlPassword(config.qdrantUrl),
      ...urlPassword(config.s3Endpoint),
    ]);
    const counts = doctorCounts(rows);
    await write(
      flags.json ? `${JSON.stringify({ ok: counts.fail === 0, counts, checks: rows }, null, 2)}\n` : formatDoctor(rows),
    );
    // A check that timed out leaves its request behind (an SDK retrying, a socket
    // connecting): exit now rather than wait for it.
    process.exit(counts.fail > 0 ? 1 : 0);
  });
}
