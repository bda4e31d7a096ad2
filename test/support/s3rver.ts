// An s3rver 3.7.1 (a weaker S3 stand-in: no signature checks, legacy tokens) for the demo and
// the benchmark when no MinIO binary is built: a child process (see s3rver-child.cjs for
// why) on a free port with its own temporary directory. Tests use MinIO (minio.ts).

import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RequestCounts, S3ForTest } from './s3.js';

export interface S3rverForTest extends S3ForTest {
  /** The directory s3rver stores objects in; removed by close(). */
  readonly dir: string;
}

type ChildMessage =
  | { type: 'ready'; port: number }
  | { type: 'failed'; message: string }
  | { type: 'count'; id: number; counts: RequestCounts };

const CHILD_SCRIPT = fileURLToPath(new URL('./s3rver-child.cjs', import.meta.url));
const START_TIMEOUT_MS = 15_000;

export async function startS3rver(): Promise<S3rverForTest> {
  const dir = await mkdtemp(join(tmpdir(), 's3rver-test-'));
  const child = fork(CHILD_SCRIPT, [dir], {
    // execArgv: [] so jest's --experimental-vm-modules does not reach the child.
    execArgv: [],
    env: { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider' },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  let port: number;
  try {
    port = await waitForReady(child, () => stderr);
    await waitUntilAnswering(`http://127.0.0.1:${port}/`);
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  let nextId = 0;
  const pending = new Map<number, (counts: RequestCounts) => void>();
  child.on('message', (msg: ChildMessage) => {
    if (msg.type !== 'count') return;
    pending.get(msg.id)?.(msg.counts);
    pending.delete(msg.id);
  });

  return {
    endpoint: `http://127.0.0.1:${port}`,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    kind: 's3rver',
    output: () => stderr,
    dir,
    requestCount: () =>
      new Promise<RequestCounts>((resolve, reject) => {
        const id = ++nextId;
        pending.set(id, resolve);
        child.send({ type: 'count', id }, (err) => {
          if (err) {
            pending.delete(id);
            reject(err);
          }
        });
      }),
    close: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.send({ type: 'close' });
        // A child that does not exit on its own within 5 s is killed: a test must not hang here.
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function waitForReady(child: ChildProcess, stderr: () => string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => fail(`s3rver did not start within ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    function fail(message: string): void {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      const output = stderr().trim();
      reject(new Error(output ? `${message}\n${output}` : message));
    }
    function onMessage(msg: ChildMessage): void {
      if (msg.type === 'failed') return fail(`s3rver failed to start: ${msg.message}`);
      if (msg.type !== 'ready') return;
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(msg.port);
    }
    function onExit(code: number | null): void {
      fail(`s3rver exited with code ${String(code)} before it was ready`);
    }
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** The child says it listens; one real HTTP answer proves it serves (ListBuckets, not counted). */
async function waitUntilAnswering(url: string): Promise<void> {
  const response = await fetch(url, { signal: AbortSignal.timeout(START_TIMEOUT_MS) });
  await response.arrayBuffer();
  if (response.status !== 200) throw new Error(`s3rver answered GET / with ${response.status}`);
}
