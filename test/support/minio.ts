/**
 * A MinIO server of a test's own: the binary `scripts/setup.sh` builds from MinIO's Go
 * module, as a child process on a free port, with its own data directory and its own
 * root credentials. It verifies signatures, answers with real S3 errors and ETags
 * (multipart: `md5-of-parts-N`), serves presigned GETs and pages ListObjectsV2.
 *
 * Request counts come from MinIO's own Prometheus counters (metrics v3,
 * `minio_api_requests_total` by API name, failed requests included; the v2 endpoint caches
 * its numbers for several seconds, v3 does not).
 */
import { spawn, execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';
import type { RequestCounts, S3ForTest } from './s3.js';

const START_TIMEOUT_MS = 30_000;

/** Where the MinIO binary is: MINIO_BIN, else GOPATH/bin/minio (where `go install` puts it), else PATH. */
export function minioBinary(): string | undefined {
  if (process.env.MINIO_BIN) return process.env.MINIO_BIN;
  let gopath = process.env.GOPATH;
  if (!gopath) {
    try {
      gopath = execFileSync('go', ['env', 'GOPATH'], { encoding: 'utf8' }).trim();
    } catch {
      gopath = join(homedir(), 'go');
    }
  }
  const inGopath = join(gopath.split(':')[0] ?? '', 'bin', 'minio');
  if (existsSync(inGopath)) return inGopath;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, 'minio'))) return join(dir, 'minio');
  }
  return undefined;
}

/** `env`: more of MinIO's variables (a test's notification targets: MINIO_NOTIFY_WEBHOOK_*, MINIO_NOTIFY_REDIS_*). */
export async function startMinio(opts: { readonly env?: Readonly<Record<string, string>> } = {}): Promise<S3ForTest> {
  // MinIO takes its port up front, so the port is found free and then bound by another
  // process: another test's server may take it in between. A MinIO that could not bind
  // exits at once: try again on a new port.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startMinioOnce(opts);
    } catch (err) {
      if (attempt >= 3 || !/address already in use|bind/i.test(String(err))) throw err;
    }
  }
}

async function startMinioOnce(opts: { readonly env?: Readonly<Record<string, string>> }): Promise<S3ForTest> {
  const bin = minioBinary();
  if (!bin) throw new Error('no MinIO binary: run `npm run setup` (it builds MinIO with go install), or set MINIO_BIN');
  const dir = await mkdtemp(join(tmpdir(), 'minio-test-'));
  const port = await freePort();
  const credentials = {
    accessKeyId: `test${randomBytes(4).toString('hex')}`,
    secretAccessKey: randomBytes(16).toString('hex'),
  };
  const endpoint = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(bin, ['server', join(dir, 'data'), '--address', `127.0.0.1:${port}`, '--quiet'], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      MINIO_ROOT_USER: credentials.accessKeyId,
      MINIO_ROOT_PASSWORD: credentials.secretAccessKey,
      // the counters behind requestCount(), readable without a bearer token
      MINIO_PROMETHEUS_AUTH_TYPE: 'public',
      MINIO_BROWSER: 'off',
      MINIO_UPDATE: 'off',
      ...opts.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', (err) => {
      out += String(err);
      resolve();
    });
  });

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`minio exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${out}`);
    }
    const live = await fetch(`${endpoint}/minio/health/live`, { signal: AbortSignal.timeout(2_000) }).then(
      (r) => r.status === 200,
      () => false,
    );
    if (live) break;
    if (Date.now() > deadline) {
      await stop();
      await rm(dir, { recursive: true, force: true });
      throw new Error(`minio was not ready within ${START_TIMEOUT_MS} ms:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    endpoint,
    credentials,
    kind: 'minio',
    async requestCount(): Promise<RequestCounts> {
      // MinIO bumps a counter just after it has sent the answer, so a read right after a
      // call can miss that call, and a request a killed client left in flight is counted
      // when MinIO has answered it: read until two reads 300 ms apart agree.
      let last = await readCounts();
      for (;;) {
        await new Promise((r) => setTimeout(r, 300));
        const now = await readCounts();
        if (now.get === last.get && now.list === last.list && now.head === last.head) return now;
        last = now;
      }
    },
    output: () => out,
    async close() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };

  async function readCounts(): Promise<RequestCounts> {
    const text = await (await fetch(`${endpoint}/minio/metrics/v3/api/requests`)).text();
    const count = (...apis: string[]): number => {
      let n = 0;
      for (const api of apis) {
        const m = new RegExp(`^minio_api_requests_total\\{name="${api}"[^}]*\\} (\\d+)`, 'm').exec(text);
        n += m ? Number(m[1]) : 0;
      }
      return n;
    };
    return { get: count('GetObject'), list: count('ListObjectsV2', 'ListObjectsV1'), head: count('HeadObject') };
  }
}
