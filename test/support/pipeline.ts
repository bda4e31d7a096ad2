/**
 * A whole pipeline environment for an integration test: MinIO (S3 protocol), the API
 * simulator (real HTTP), the Qdrant stand-in (or QDRANT_URL), the machine's Redis with a
 * queue prefix of the test's own, and the CLI run as real child processes.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import type { S3Client } from '@aws-sdk/client-s3';
import { startSimulator } from '../../src/simulator/index.js';
import type { Simulator } from '../../src/simulator/index.js';
import type { SimulatorOptionsInput } from '../../src/simulator/options.js';
import { qdrantForTest } from './qdrant.js';
import { startMinio } from './minio.js';
import { s3Env, testS3Client } from './s3.js';
import type { S3ForTest } from './s3.js';

export const TEST_API_KEY = 'sk-test-pipeline-0123456789abcdef';
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface PipelineEnv {
  readonly s3: S3ForTest;
  readonly s3client: S3Client;
  readonly sim: Simulator;
  readonly qdrantUrl: string;
  readonly redis: Redis;
  readonly prefix: string;
  /** Environment for CLI processes: every variable pointing at this test's servers. */
  readonly env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

/**
 * `sim.allowPrivateUrls: true` is the switch a test of URL mode or of videos flips: the
 * simulator then downloads from this machine's MinIO, and the CLI processes get
 * ALLOW_PRIVATE_MEDIA_URLS=true to send such URLs. Without it both behave as against the
 * real provider: index refuses IMAGE_MODE=url and skips videos, the simulator refuses
 * loopback URLs. `minioEnv`: more of MinIO's variables (notification targets).
 */
export async function startPipelineEnv(
  sim: Partial<SimulatorOptionsInput> = {},
  opts: { readonly minioEnv?: Readonly<Record<string, string>> } = {},
): Promise<PipelineEnv> {
  const s3 = await startMinio(opts.minioEnv ? { env: opts.minioEnv } : {});
  const simulator = await startSimulator({ apiKey: TEST_API_KEY, port: 0, rateLimits: 'off', ...sim });
  const qdrant = await qdrantForTest();
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const prefix = `test-${randomUUID().slice(0, 8)}`;
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    DASHSCOPE_API_KEY: TEST_API_KEY,
    DASHSCOPE_BASE_URL: simulator.url,
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: prefix,
    QDRANT_URL: qdrant.url,
    ...(qdrant.apiKey ? { QDRANT_API_KEY: qdrant.apiKey } : {}),
    ...s3Env(s3),
    LOG_LEVEL: 'warn',
    CI: 'true',
    // the SDK's notice that its 2027 releases need Node 22: true, but noise in assertions on stderr
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    ...(sim.allowPrivateUrls === true ? { ALLOW_PRIVATE_MEDIA_URLS: 'true' } : {}),
  };
  return {
    s3,
    s3client: testS3Client(s3),
    sim: simulator,
    qdrantUrl: qdrant.url,
    redis,
    prefix,
    env,
    async close() {
      // the test's own keys only: other tests share this Redis
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await redis.del(...keys);
      } while (cursor !== '0');
      await redis.quit();
      await simulator.close();
      await qdrant.close();
      await s3.close();
    },
  };
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function cliProcess(args: readonly string[], env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', 'src/cli/run.ts', ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/**
 * Runs `mm-ingest ARGS` to its end; one still running after `timeoutMs` is killed and
 * answers with code null and a line saying so on stderr (a hung command fails its test
 * instead of outliving it).
 */
export function runCli(args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs = 300_000): Promise<CliResult> {
  const child = cliProcess(args, env);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => {
    stderr += `\n[test] mm-ingest ${args.join(' ')} still running after ${timeoutMs} ms: killed\n`;
    child.kill('SIGKILL');
  }, timeoutMs);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

export interface BackgroundCli {
  readonly child: ChildProcess;
  output(): string;
  /** Resolves once a line of output matches. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Resolves with the exit code once the process ends on its own. */
  exited(): Promise<number | null>;
}

/** Starts `mm-ingest ARGS` in the background (a worker). */
export function startCli(args: readonly string[], env: NodeJS.ProcessEnv): BackgroundCli {
  const child = cliProcess(args, env);
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    output: () => out,
    async waitFor(pattern, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pattern.test(out)) {
        if (child.exitCode !== null) throw new Error(`process exited (${child.exitCode}) before ${pattern}: ${out}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}: ${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
    exited: () => exited,
  };
}

/** The run id `index` prints first (`run ID: scanning`), or '' when it printed none. */
export const runIdOf = (stdout: string): string => /run (\S+): scanning/.exec(stdout)?.[1] ?? '';

/** A line of figures for the test's log (`[figures] ...`), the measured side of a test's report. */
export const figures = (line: string): void => void process.stdout.write(`[figures] ${line}\n`);

/**
 * Sends `signal` and resolves with the exit code; a process still running `graceMs` later
 * is killed (SIGKILL), so a drain that hangs fails its test instead of outliving it.
 */
export async function stopCli(
  cli: BackgroundCli,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 15_000,
): Promise<number | null> {
  const timer = setTimeout(() => cli.child.kill('SIGKILL'), graceMs);
  try {
    return await cli.stop(signal);
  } finally {
    clearTimeout(timer);
  }
}
