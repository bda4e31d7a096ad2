/**
 * A Redis Cluster of a test's own: three masters (no replicas) from the machine's
 * `redis-server`, each on a free port with its node file in one temporary directory, joined
 * with `redis-cli --cluster create` and ready once every node reports `cluster_state:ok`.
 *
 * `seeds` is what a user would put in REDIS_URL (every node, comma-separated); one node is
 * enough for a client to discover the rest. `clean(prefix)` deletes a test's keys: SCAN
 * answers from one node only, so it runs on every master. `close()` stops the nodes
 * (SIGKILL if one lingers) and removes the directory.
 */
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { freePort } from './ports.js';

const run = promisify(execFile);
const READY_TIMEOUT_MS = 30_000;

export interface RedisClusterForTest {
  readonly ports: readonly number[];
  /** `redis://127.0.0.1:P1,redis://127.0.0.1:P2,redis://127.0.0.1:P3` */
  readonly seeds: string;
  /** A cluster client of the test's own (maxRetriesPerRequest null, as BullMQ wants). */
  client(): Cluster;
  /** Deletes every key matching `pattern` on every master. */
  clean(client: Cluster, pattern: string): Promise<number>;
  close(): Promise<void>;
  /** What the nodes and redis-cli printed (for a failing test's message). */
  output(): string;
}

/** A one-shot client that gives up at once (its errors are the caller's answer, not events). */
function probe(port: number): Redis {
  const r = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on('error', () => undefined);
  return r;
}

async function clusterOk(port: number): Promise<boolean> {
  const r = probe(port);
  try {
    await r.connect();
    return /cluster_state:ok/.test(await r.cluster('INFO'));
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

export async function startRedisCluster(masters = 3): Promise<RedisClusterForTest> {
  const dir = await mkdtemp(join(tmpdir(), 'redis-cluster-test-'));
  const ports: number[] = [];
  // three distinct free ports (freePort closes its listener, so ask until they differ)
  while (ports.length < masters) {
    const p = await freePort();
    // the cluster bus listens on port + 10000: both must be usable
    if (!ports.includes(p) && p + 10_000 <= 65_535) ports.push(p);
  }
  const children: ChildProcess[] = [];
  let out = '';
  const exited = new Map<ChildProcess, Promise<void>>();

  const close = async (): Promise<void> => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    const timer = setTimeout(
      () => children.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill('SIGKILL')),
      5_000,
    );
    await Promise.all([...exited.values()]);
    clearTimeout(timer);
    await rm(dir, { recursive: true, force: true });
  };

  try {
    for (const port of ports) {
      const child = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--dir',
          dir,
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          `nodes-${port}.conf`,
          '--cluster-node-timeout',
          '5000',
          '--appendonly',
          'no',
          '--save',
          '',
          '--maxmemory-policy',
          'noeviction',
          '--protected-mode',
          'no',
          '--daemonize',
          'no',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      children.push(child);
      exited.set(
        child,
        new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.once('error', (err) => {
            out += `redis-server: ${err.message}\n`;
            resolve();
          });
        }),
      );
      child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr?.setEncoding('utf8').on('data', (d: string) => (out += d));
    }
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (const port of ports) {
      for (;;) {
        const r = probe(port);
        const up = await r
          .connect()
          .then(() => r.ping())
          .then(
            () => true,
            () => false,
          );
        r.disconnect();
        if (up) break;
        if (children.some((c) => c.exitCode !== null))
          throw new Error(`a cluster node exited before it was up:\n${out}`);
        if (Date.now() > deadline)
          throw new Error(`cluster node on ${port} did not start within ${READY_TIMEOUT_MS} ms:\n${out}`);
        await new Promise((res) => setTimeout(res, 50));
      }
    }
    const created = await run('redis-cli', [
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    out += created.stdout + created.stderr;
    while (!(await Promise.all(ports.map(clusterOk))).every(Boolean)) {
      if (Date.now() > deadline)
        throw new Error(`the cluster did not reach cluster_state:ok within ${READY_TIMEOUT_MS} ms:\n${out}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  } catch (err) {
    await close();
    throw err;
  }

  return {
    ports,
    seeds: ports.map((p) => `redis://127.0.0.1:${p}`).join(','),
    client: () =>
      new Cluster(
        ports.map((port) => ({ host: '127.0.0.1', port })),
        { redisOptions: { maxRetriesPerRequest: null } },
      ),
    async clean(client, pattern) {
      let deleted = 0;
      for (const node of client.nodes('master')) {
        let cursor = '0';
        do {
          const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
          cursor = next;
          // one key at a time: a multi-key DEL across slots is refused on a cluster
          for (const k of keys) deleted += await node.del(k);
        } while (cursor !== '0');
      }
      return deleted;
    },
    close,
    output: () => out,
  };
}
