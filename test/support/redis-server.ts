/**
 * A Redis server of a test's own: `redis-server` (on PATH on every build machine) as a
 * child process on a free port, with append-only persistence in a temporary directory,
 * so a test can stop it and start it again on the same port and data: what a Redis
 * restart in production looks like to the workers.
 *
 * `stop()` sends SIGTERM (Redis writes and fsyncs its AOF, then exits) and waits for the
 * exit; `start()` starts it again and resolves once it accepts connections (after it has
 * loaded the AOF); `close()` stops it (SIGKILL if it lingers) and removes the directory.
 * `extraArgs` come after the defaults, so they override them (redis-server applies its
 * options in order): `['--maxmemory-policy', 'allkeys-lru']`, `['--appendonly', 'no']`.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export interface RedisServerForTest {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** The data directory (appendonly files). */
  readonly dir: string;
  /** True while the server process runs. */
  running(): boolean;
  /** Starts it again on the same port and directory; resolves when it accepts connections. */
  start(): Promise<void>;
  /** SIGTERM, then waits for the process to exit (SIGKILL after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<void>;
  /** stop() then start(). */
  restart(): Promise<void>;
  /** Stops it for good and removes its directory. */
  close(): Promise<void>;
  /** Everything the server printed (for a failing test's message). */
  output(): string;
}

export interface RedisServerOptions {
  /** redis-server options after the defaults (which they override). @defaultValue [] */
  readonly extraArgs?: readonly string[];
}

const START_TIMEOUT_MS = 15_000;

export async function startRedisServer(opts: RedisServerOptions = {}): Promise<RedisServerForTest> {
  const dir = await mkdtemp(join(tmpdir(), 'redis-test-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let out = '';

  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--appendonly',
    'yes',
    '--appendfsync',
    'everysec',
    '--save',
    '',
    '--maxmemory-policy',
    'noeviction',
    '--daemonize',
    'no',
    '--protected-mode',
    'no',
    '--loglevel',
    'notice',
    ...(opts.extraArgs ?? []),
  ];

  async function start(): Promise<void> {
    if (child && child.exitCode === null && child.signalCode === null)
      throw new Error(`redis-server on port ${port} is already running`);
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let mine = '';
    let failed: Error | undefined;
    exited = new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      // not on PATH, or not executable: no 'exit' follows
      proc.once('error', (err) => {
        failed = err;
        resolve();
      });
    });
    const onData = (d: string): void => {
      out += d;
      mine += d;
    };
    proc.stdout?.setEncoding('utf8').on('data', onData);
    proc.stderr?.setEncoding('utf8').on('data', onData);
    const deadline = Date.now() + START_TIMEOUT_MS;
    // "Ready to accept connections" is printed once the AOF is loaded
    while (!/Ready to accept connections/.test(mine)) {
      if (failed) throw new Error(`redis-server could not be started: ${failed.message}`);
      if (proc.exitCode !== null || proc.signalCode !== null)
        throw new Error(`redis-server exited (${proc.exitCode ?? proc.signalCode}) before it was ready:\n${mine}`);
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        await exited;
        throw new Error(`redis-server was not ready within ${START_TIMEOUT_MS} ms:\n${mine}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function stop(timeoutMs = 10_000): Promise<void> {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
  }

  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
    start,
    stop,
    async restart() {
      await stop();
      await start();
    },
    async close() {
      await stop(5_000);
      await rm(dir, { recursive: true, force: true });
    },
    output: () => out,
  };
}
