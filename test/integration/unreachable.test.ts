/**
 * Services that cannot be reached, for real: closed ports (nothing listens: ECONNREFUSED)
 * and a server that accepts connections and never answers (test/support/silent-server.ts),
 * in place of Redis (single and cluster), S3 and Qdrant, one at a time, the others being
 * the test's real servers. Every command that connects must end with exit code 2 and one
 * line naming the service, its URL with the password masked, and the cause, within the
 * connect timeout (CONNECT_TIMEOUT_MS, set low here); no secret may appear. A worker
 * instead keeps retrying a Redis it cannot reach, logging one line per interval, and goes
 * on once Redis is back.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import pLimit from 'p-limit';
import { freePort } from '../support/ports.js';
import { runCli, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { CliResult, PipelineEnv } from '../support/pipeline.js';
import { startRedisServer } from '../support/redis-server.js';
import { createBucket, putObject } from '../support/s3.js';
import { startSilentServer } from '../support/silent-server.js';
import type { SilentServer } from '../support/silent-server.js';

const BUCKET = 'reach';
const MODEL = 'qwen3-vl-embedding';
const CONNECT_TIMEOUT_MS = 1500;
const REDIS_PASSWORD = 's3cret-redis-pw';

/** Every command that reaches Redis (the schedule's request flags as the reindex's). */
const request = ['--bucket', BUCKET, '--collection', 'reach', '--model', MODEL];
const REDIS_COMMANDS: readonly (readonly string[])[] = [
  ['index', ...request],
  ['status'],
  ['status', '--wait'],
  ['failures'],
  ['retry-failed'],
  ['resume'],
  ['runs'],
  ['runs', 'show', 'some-run'],
  ['reindex', ...request],
  ['schedule', 'add', '--name', 'nightly', '--cron', '0 2 * * *', ...request],
  ['schedule', 'list'],
  ['schedule', 'remove', 'nightly'],
  ['dashboard', '--port', '0'],
];
const S3_COMMANDS: readonly (readonly string[])[] = [
  ['index', ...request],
  ['index', ...request, '--key', 'a.txt'],
  ['estimate', '--bucket', BUCKET, '--model', MODEL],
];
const QDRANT_COMMANDS: readonly (readonly string[])[] = [
  ['index', ...request],
  ['search', 'hello', '--collection', 'reach', '--model', MODEL, '--dimension', '256'],
  ['retry-failed'],
  ['status', '--wait'],
];

interface Outcome {
  readonly command: string;
  readonly code: number | null;
  readonly lines: string[];
  readonly ms: number;
}

describe('commands whose Redis, S3 or Qdrant cannot be reached', () => {
  let env: PipelineEnv;
  let silent: SilentServer;
  let closed: number;
  let closed2: number;
  const timings: string[] = [];

  beforeAll(async () => {
    env = await startPipelineEnv();
    await createBucket(env.s3client, BUCKET);
    await putObject(env.s3client, BUCKET, 'a.txt', 'A text to index.');
    silent = await startSilentServer();
    closed = await freePort();
    closed2 = await freePort();
  }, 120_000);

  afterAll(async () => {
    if (timings.length > 0)
      console.log(`time to the error (CONNECT_TIMEOUT_MS=${CONNECT_TIMEOUT_MS}):\n${timings.join('\n')}`);
    await silent?.close();
    await env?.close();
  });

  const baseEnv = (): NodeJS.ProcessEnv => ({ ...env.env, CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS) });

  /** Runs each command (three at a time: two cores) and returns what it printed, line by line. */
  async function runAll(
    commands: readonly (readonly string[])[],
    e: NodeJS.ProcessEnv,
    label: string,
  ): Promise<Outcome[]> {
    const limit = pLimit(3);
    return Promise.all(
      commands.map((args) =>
        limit(async () => {
          const started = Date.now();
          const res: CliResult = await runCli(args, e);
          const ms = Date.now() - started;
          timings.push(`  ${label}: mm-ingest ${args.join(' ')}: exit ${res.code} after ${ms} ms`);
          const lines = `${res.stdout}${res.stderr}`.split('\n').filter((l) => l.trim() !== '');
          return { command: args.join(' '), code: res.code, lines, ms };
        }),
      ),
    );
  }

  /** Exit 2, one line matching `line`, and no secret anywhere. */
  function expectOneLine(outcomes: readonly Outcome[], line: RegExp): void {
    expect(outcomes.map(({ command, code, lines }) => ({ command, code, lines }))).toEqual(
      outcomes.map(({ command }) => ({ command, code: 2, lines: [expect.stringMatching(line)] })),
    );
    for (const o of outcomes) {
      const text = o.lines.join('\n');
      for (const secret of [
        REDIS_PASSWORD,
        env.env.AWS_SECRET_ACCESS_KEY ?? '',
        env.env.DASHSCOPE_API_KEY ?? '',
        env.env.QDRANT_API_KEY ?? 'no key',
      ])
        expect(text).not.toContain(secret);
    }
  }

  const redisUrl = (port: number): string => `redis://user:${REDIS_PASSWORD}@127.0.0.1:${port}`;
  const masked = (port: number): string => `redis://user:\\*\\*\\*@127\\.0\\.0\\.1:${port}`;

  it('Redis on a closed port: every command says so in one line and exits 2', async () => {
    const out = await runAll(REDIS_COMMANDS, { ...baseEnv(), REDIS_URL: redisUrl(closed) }, 'Redis closed port');
    expectOneLine(out, new RegExp(`^mm-ingest: cannot reach Redis at ${masked(closed)}: .*ECONNREFUSED`));
  }, 240_000);

  it('Redis that accepts and never answers: every command gives up after the connect timeout, in one line, exit 2', async () => {
    const out = await runAll(REDIS_COMMANDS, { ...baseEnv(), REDIS_URL: redisUrl(silent.port) }, 'Redis silent');
    expectOneLine(
      out,
      new RegExp(
        `^mm-ingest: cannot reach Redis at ${masked(silent.port)}: no answer within ${CONNECT_TIMEOUT_MS} ms \\(CONNECT_TIMEOUT_MS\\)$`,
      ),
    );
  }, 240_000);

  it('a Redis Cluster whose seed nodes are closed or silent: one line naming the cluster and its seeds, exit 2', async () => {
    const clusterEnv = (ports: number[]): NodeJS.ProcessEnv => ({
      ...baseEnv(),
      REDIS_CLUSTER: 'true',
      QUEUE_PREFIX: `{${env.prefix}}`,
      REDIS_URL: ports.map(redisUrl).join(','),
    });
    const commands = [['status'], ['reindex', ...request], ['runs']];
    const refused = await runAll(commands, clusterEnv([closed, closed2]), 'Redis Cluster closed ports');
    // ioredis's cluster keeps its nodes' socket errors to itself: the cause is that no seed answered
    expectOneLine(
      refused,
      new RegExp(
        `^mm-ingest: cannot reach Redis Cluster at ${masked(closed)},${masked(closed2)}: no seed node answered \\(Failed to refresh slots cache`,
      ),
    );
    const hung = await runAll(commands, clusterEnv([silent.port]), 'Redis Cluster silent');
    expectOneLine(hung, new RegExp(`^mm-ingest: cannot reach Redis Cluster at ${masked(silent.port)}: `));
  }, 240_000);

  it('S3 on a closed port or silent: index and estimate say so in one line, exit 2', async () => {
    const refused = await runAll(
      S3_COMMANDS,
      { ...baseEnv(), S3_ENDPOINT: `http://127.0.0.1:${closed}` },
      'S3 closed port',
    );
    expectOneLine(
      refused,
      new RegExp(`^mm-ingest: cannot reach S3 at http://127\\.0\\.0\\.1:${closed}: .*ECONNREFUSED`),
    );
    const hung = await runAll(
      S3_COMMANDS,
      { ...baseEnv(), S3_ENDPOINT: `http://127.0.0.1:${silent.port}` },
      'S3 silent',
    );
    expectOneLine(
      hung,
      new RegExp(
        `^mm-ingest: cannot reach S3 at http://127\\.0\\.0\\.1:${silent.port}: no answer within ${CONNECT_TIMEOUT_MS} ms \\(CONNECT_TIMEOUT_MS\\)$`,
      ),
    );
  }, 240_000);

  it('Qdrant on a closed port or silent: index, search, retry-failed and status --wait say so in one line, exit 2', async () => {
    const refused = await runAll(
      QDRANT_COMMANDS,
      { ...baseEnv(), QDRANT_URL: `http://127.0.0.1:${closed}` },
      'Qdrant closed port',
    );
    expectOneLine(
      refused,
      new RegExp(`^mm-ingest: cannot reach Qdrant at http://127\\.0\\.0\\.1:${closed}: .*ECONNREFUSED`),
    );
    const hung = await runAll(
      QDRANT_COMMANDS,
      { ...baseEnv(), QDRANT_URL: `http://127.0.0.1:${silent.port}` },
      'Qdrant silent',
    );
    expectOneLine(
      hung,
      new RegExp(
        `^mm-ingest: cannot reach Qdrant at http://127\\.0\\.0\\.1:${silent.port}: no answer within ${CONNECT_TIMEOUT_MS} ms \\(CONNECT_TIMEOUT_MS\\)$`,
      ),
    );
  }, 240_000);

  it('a follower (status --wait) that loses Redis for longer than the connect timeout says so in one line and exits 2', async () => {
    const redis = await startRedisServer();
    const e = { ...baseEnv(), REDIS_URL: redis.url, QUEUE_PREFIX: `${env.prefix}-f` };
    try {
      // no worker: the run stays open, and the follower follows it
      const queued = await runCli(
        ['index', '--bucket', BUCKET, '--collection', `follow-${env.prefix}`, '--model', MODEL, '--dimension', '256'],
        e,
      );
      expect({ code: queued.code, stderr: queued.stderr }).toEqual({ code: 0, stderr: '' });
      const follower = startCli(['status', '--wait'], e);
      try {
        await follower.waitFor(/queue \S+:embed: /);
        const mark = follower.output().length;
        await redis.stop();
        const code = await follower.exited();
        const lines = follower
          .output()
          .slice(mark)
          .split('\n')
          .filter((l) => l.trim() !== '')
          // its progress lines go on until Redis is gone (a loaded machine may print one after the mark)
          .filter((l) => !/^run \S+: objects /.test(l));
        expect({ code, lines }).toEqual({
          code: 2,
          lines: [
            expect.stringMatching(
              new RegExp(
                `^mm-ingest: cannot reach Redis at redis://127\\.0\\.0\\.1:${redis.port}: lost for ${CONNECT_TIMEOUT_MS} ms \\(CONNECT_TIMEOUT_MS\\): .*ECONNREFUSED`,
              ),
            ),
          ],
        });
      } finally {
        await follower.stop('SIGKILL');
      }
    } finally {
      await redis.close();
    }
  }, 120_000);

  it('a worker keeps retrying a Redis it cannot reach, one line per interval without stack traces, and goes on once it is back', async () => {
    const password = 'w0rker-redis-pw';
    const redis = await startRedisServer({ extraArgs: ['--requirepass', password] });
    const url = `redis://:${password}@127.0.0.1:${redis.port}`;
    const interval = 1000;
    const e = { ...baseEnv(), REDIS_URL: url, QUEUE_PREFIX: `${env.prefix}-w`, CONNECT_TIMEOUT_MS: String(interval) };
    const outage = (text: string): string[] => text.split('\n').filter((l) => /unreachable/.test(l));
    const expectCalm = (text: string, seconds: number): void => {
      try {
        checkCalm(text, seconds);
      } catch (err) {
        throw new Error(`${(err as Error).message}\nworker output:\n${text}`, { cause: err });
      }
    };
    const checkCalm = (text: string, seconds: number): void => {
      // one line per interval (and the first at once), nothing per attempt
      expect(outage(text).length).toBeGreaterThanOrEqual(1);
      expect(outage(text).length).toBeLessThanOrEqual(Math.ceil((seconds * 1000) / interval) + 2);
      expect(text).not.toMatch(/^\s+at /m);
      expect(text).not.toMatch(/worker error|queue connection error/);
      expect(text).not.toContain(password);
      expect(outage(text)[0]).toContain(`redis://:***@127.0.0.1:${redis.port}`);
      expect(outage(text)[0]).toContain('ECONNREFUSED');
    };
    await redis.stop();
    const worker = startCli(['worker'], e);
    let stopped: number | null | 'hung' | undefined;
    try {
      // started while Redis is down: it waits for it (the first line once the process is up,
      // which on a loaded machine can take longer than the interval)
      const startedAt = Date.now();
      await worker.waitFor(/unreachable/, 60_000);
      await sleep(3000);
      expect(worker.child.exitCode).toBeNull();
      expectCalm(worker.output(), (Date.now() - startedAt) / 1000);
      await redis.start();
      await worker.waitFor(/worker ready/, 30_000);

      // lost while running: the same, then back
      const mark = worker.output().length;
      const lostAt = Date.now();
      await redis.stop();
      await sleep(4000);
      for (let i = 0; i < 300 && !/unreachable/.test(worker.output().slice(mark)); i++) await sleep(100);
      expect(worker.child.exitCode).toBeNull();
      expectCalm(worker.output().slice(mark), (Date.now() - lostAt) / 1000);
      await redis.start();
      for (let i = 0; i < 300 && !/reachable again/.test(worker.output().slice(mark)); i++) await sleep(100);
      expect(worker.output().slice(mark)).toMatch(/reachable again/);
      // and it works: a run queued now is embedded (BullMQ's blocking connection is back too;
      // a SIGTERM in the seconds after a Redis restart can hang BullMQ's close, with or without this change)
      const run = await runCli(
        [
          'index',
          '--bucket',
          BUCKET,
          '--collection',
          `worker-${env.prefix}`,
          '--model',
          MODEL,
          '--dimension',
          '256',
          '--wait',
        ],
        e,
      );
      expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    } finally {
      // a worker drains through Redis: give it back one before stopping it
      if (!redis.running()) await redis.start();
      // a drain that hangs fails the test with what the worker said, instead of its timeout
      stopped = await Promise.race([worker.stop('SIGTERM'), sleep(30_000).then(() => 'hung' as const)]);
      if (stopped === 'hung') await worker.stop('SIGKILL');
      // stopped whatever happened above: a Redis left running fails the file's leak check
      await redis.close();
    }
    // after the finally, so that a failure above is the one reported
    expect({ stopped, output: stopped === 0 ? '' : worker.output() }).toEqual({ stopped: 0, output: '' });
  }, 120_000);

  it('a worker told to stop in the seconds after a Redis restart exits within its drain timeout', async () => {
    const redis = await startRedisServer();
    const drainMs = 3000;
    const e = {
      ...baseEnv(),
      REDIS_URL: `redis://127.0.0.1:${redis.port}`,
      QUEUE_PREFIX: `${env.prefix}-r`,
      CONNECT_TIMEOUT_MS: '1000',
      DRAIN_TIMEOUT_MS: String(drainMs),
    };
    // started while Redis is down, then two outages: the path where the hang was seen
    await redis.stop();
    const worker = startCli(['worker'], e);
    try {
      await sleep(2000);
      await redis.start();
      await worker.waitFor(/worker ready/, 30_000);
      for (let round = 0; round < 2; round++) {
        const mark = worker.output().length;
        await redis.stop();
        await sleep(2500);
        await redis.start();
        for (let i = 0; i < 300 && !/reachable again/.test(worker.output().slice(mark)); i++) await sleep(100);
        expect(worker.output().slice(mark)).toMatch(/reachable again/);
      }
      // the window where BullMQ's own close used to wait for ever
      await sleep(1500);
      const stopped = await Promise.race([worker.stop('SIGTERM'), sleep(drainMs + 15_000).then(() => 'hung' as const)]);
      if (stopped === 'hung') await worker.stop('SIGKILL');
      expect({ stopped, output: stopped === 0 ? '' : worker.output() }).toEqual({ stopped: 0, output: '' });
    } finally {
      await worker.stop('SIGKILL');
      await redis.close();
    }
  }, 120_000);
});
