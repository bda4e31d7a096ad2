/**
 * The morning index is never worse than the evening's: rebuilds that switch only to a
 * complete build, prunes that delete only what the bucket no longer has, and runs that
 * account for every object. Real processes (`index`, `worker`, `status`) against MinIO
 * (through a proxy that can stall or drop the listing at a known page), the simulator,
 * real Redis and the Qdrant stand-in (or QDRANT_URL). The scenarios run in order and
 * share one bucket; `keys` is the test's model of what the bucket holds.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { QdrantClient } from '@qdrant/js-client-rest';
import { Queue } from 'bullmq';
import { pointId } from '../../src/ids.js';
import { RunStore } from '../../src/runs.js';
import { deleteMany, putMany, runIdOf, until, words } from '../support/incremental.js';
import { createBucket } from '../support/s3.js';
import { startS3Proxy } from '../support/s3-proxy.js';
import type { S3Proxy } from '../support/s3-proxy.js';
import { figures, runCli, startCli, startPipelineEnv, stopCli } from '../support/pipeline.js';
import type { BackgroundCli, CliResult, PipelineEnv } from '../support/pipeline.js';

const BUCKET = 'safety';
const MODEL = 'qwen3-vl-embedding';
const OBJECTS = 30;
const textKey = (n: number): string => `docs/t-${String(n).padStart(2, '0')}.txt`;

describe('never lose the live index, never delete a current point, account for every object', () => {
  let env: PipelineEnv;
  let cliEnv: NodeJS.ProcessEnv;
  let viaProxy: NodeJS.ProcessEnv;
  let proxy: S3Proxy;
  let worker: BackgroundCli | undefined;
  const extra: BackgroundCli[] = [];
  let qdrant: QdrantClient;
  let runs: RunStore;
  /** The keys the bucket holds now. */
  const keys = new Set<string>();

  const args = (collection: string, ...more: string[]): string[] => [
    'index',
    '--bucket',
    BUCKET,
    '--collection',
    collection,
    '--model',
    MODEL,
    '--dimension',
    '256',
    ...more,
  ];
  const count = async (collection: string): Promise<number> => (await qdrant.count(collection, { exact: true })).count;
  const aliasTarget = async (alias: string): Promise<string | undefined> =>
    (await qdrant.getAliases()).aliases.find((a) => a.alias_name === alias)?.collection_name;
  const hasPoint = async (collection: string, key: string): Promise<boolean> =>
    (await qdrant.retrieve(collection, { ids: [pointId(BUCKET, key, 0)] })).length === 1;
  const put = async (key: string, body: string): Promise<void> => {
    await env.s3client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: body }));
    if (body.length > 0) keys.add(key);
    else keys.delete(key);
  };
  const exit = (result: CliResult): { code: number | null; out: string } => ({
    code: result.code,
    out: `${result.stdout}\n${result.stderr}`.slice(-3000),
  });
  /** A queue prefix of its own, under the test's (cleaned up with it), for a deployment with no worker yet. */
  const otherDeployment = (name: string): NodeJS.ProcessEnv => ({ ...cliEnv, QUEUE_PREFIX: `${env.prefix}-${name}` });

  beforeAll(async () => {
    env = await startPipelineEnv();
    cliEnv = { ...env.env, RATE_LIMIT: 'off' };
    proxy = await startS3Proxy(env.s3.endpoint);
    viaProxy = { ...cliEnv, S3_ENDPOINT: proxy.endpoint };
    qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
    runs = new RunStore(env.redis, env.prefix);
    await createBucket(env.s3client, BUCKET);
    const objects = new Map<string, string>();
    for (let i = 0; i < OBJECTS; i++) objects.set(textKey(i), `text ${i}: ${words(i, 8 + (i % 5))}`);
    await putMany(env.s3client, BUCKET, objects);
    for (const k of objects.keys()) keys.add(k);
    worker = startCli(['worker', '--concurrency', '4'], cliEnv);
    await worker.waitFor(/worker ready/);
  }, 120_000);

  afterAll(async () => {
    for (const cli of [...extra, ...(worker ? [worker] : [])]) await stopCli(cli);
    await proxy?.close();
    // the other deployments' keys (env.close removes the test's own prefix)
    for (const name of ['b', 'c', 'd']) {
      const found = await env.redis.keys(`${env.prefix}-${name}:*`);
      if (found.length > 0) await env.redis.del(...found);
    }
    await env?.close();
  });

  it('refuses a rebuild narrowed to a mistyped prefix, and fails an empty one, leaving the live index as it was', async () => {
    const first = await runCli([...args('live', '--mode', 'rebuild'), '--wait'], cliEnv);
    expect(exit(first)).toMatchObject({ code: 0 });
    const live = await aliasTarget('live');
    expect(live).toMatch(/^live--/);
    expect(await count('live')).toBe(OBJECTS);

    const narrowed = await runCli(
      [...args('live', '--mode', 'rebuild', '--prefix', 'no-such-prefix/'), '--wait'],
      cliEnv,
    );
    expect(exit(narrowed)).toMatchObject({ code: 2 });
    expect(narrowed.stderr).toContain('--prefix');
    expect(narrowed.stderr).toContain(`${OBJECTS} of its live objects`);
    expect(await aliasTarget('live')).toBe(live);
    expect(await count('live')).toBe(OBJECTS);

    // nothing live to protect, but an empty listing is still no index to switch to
    const empty = await runCli(
      [...args('fresh', '--mode', 'rebuild', '--prefix', 'no-such-prefix/'), '--wait'],
      cliEnv,
    );
    expect(exit(empty)).toMatchObject({ code: 1 });
    expect(empty.stdout).toContain('nothing listed under the prefix');
    expect(await aliasTarget('fresh')).toBeUndefined();
    figures(
      `mistyped prefix: live index ${OBJECTS} points before and after; narrowed rebuild exit ${narrowed.code}, empty rebuild exit ${empty.code}`,
    );
  }, 180_000);

  it('does not switch to a rebuild whose listing died part-way, reports the failed scan, and switches once the resumed scan completes', async () => {
    const live = await aliasTarget('live');
    proxy.dieAfterLists(proxy.lists() + 2);
    const died = await runCli([...args('live', '--mode', 'rebuild', '--page-size', '5'), '--wait'], viaProxy);
    proxy.revive();
    expect(exit(died)).toMatchObject({ code: 1 });
    const runId = runIdOf(died.stdout);
    // the pages queued before the store went away are embedded; the run ends without its switch
    const ended = await until('the broken rebuild to end', async () => {
      const run = await runs.get(runId);
      return run?.finishedAt ? run : undefined;
    }).catch(async (err: unknown) => {
      throw new Error(
        `${(err as Error).message}: ${JSON.stringify(await runs.get(runId))}\n${died.stdout}\n${died.stderr}\n${worker?.output().slice(-3000) ?? ''}`,
      );
    });
    expect(ended.scanStatus).toBe('failed');
    expect(ended.counters.objectsIndexed).toBe(10);
    expect(ended.notes.rebuild).toMatch(/^not switched: the scan did not complete/);
    expect(await aliasTarget('live')).toBe(live);
    expect(await count('live')).toBe(OBJECTS);

    const status = await runCli(['status', '--run', runId, '--wait'], cliEnv);
    expect(exit(status)).toMatchObject({ code: 1 });
    expect(status.stdout).toContain('its scan failed');
    expect(status.stdout).toContain('ListObjectsV2');

    const resumed = await runCli(
      [...args('live', '--mode', 'rebuild', '--page-size', '5'), '--run-id', runId, '--wait'],
      cliEnv,
    );
    expect(exit(resumed)).toMatchObject({ code: 0 });
    expect(await aliasTarget('live')).toBe(`live--${runId.toLowerCase()}`);
    expect(await count('live')).toBe(OBJECTS);
    figures(
      `listing died after 2 pages: live index ${OBJECTS} points before and after (broken build held ${ended.counters.points}); index exit ${died.code}, status --wait exit ${status.code}; resumed: exit ${resumed.code}, switched, ${OBJECTS} points`,
    );
  }, 180_000);

  it('carries points written through the alias while a rebuild runs into the new collection', async () => {
    const other = otherDeployment('b');
    const queued = await runCli(args('live', '--mode', 'rebuild'), other);
    expect(exit(queued)).toMatchObject({ code: 0 });
    const rebuildId = runIdOf(queued.stdout);

    // meanwhile a keys run of the main deployment writes a new object through the alias
    await put('docs/late.txt', 'written while the rebuild was running');
    const late = await runCli([...args('live', '--key', 'docs/late.txt'), '--wait'], cliEnv);
    expect(exit(late)).toMatchObject({ code: 0 });
    expect(await count('live')).toBe(OBJECTS + 1);

    const otherWorker = startCli(['worker'], other);
    extra.push(otherWorker);
    await otherWorker.waitFor(/worker ready/);
    const done = await runCli(['status', '--run', rebuildId, '--wait'], other);
    expect(exit(done)).toMatchObject({ code: 0 });
    expect(await aliasTarget('live')).toBe(`live--${rebuildId.toLowerCase()}`);
    expect(await hasPoint('live', 'docs/late.txt')).toBe(true);
    expect(await count('live')).toBe(OBJECTS + 1);
    expect((await new RunStore(env.redis, `${env.prefix}-b`).get(rebuildId))?.notes.rebuild).toContain(
      '1 points written meanwhile carried over',
    );
  }, 180_000);

  it('keeps the point of an object created and indexed by a keys run while a --prune scan was past it', async () => {
    const first = await runCli([...args('plain'), '--wait'], cliEnv);
    expect(exit(first)).toMatchObject({ code: 0 });
    expect(await count('plain')).toBe(keys.size);

    proxy.holdAfterLists(proxy.lists() + 1);
    const pruning = startCli([...args('plain', '--prune', '--page-size', '5'), '--wait'], viaProxy);
    extra.push(pruning);
    await until('the prune scan to stall at its second page', async () => (proxy.held() > 0 ? true : undefined));
    // sorts before every other key: on the page the scan has already listed
    await put('docs/a-new.txt', 'created after the scan listed this part of the bucket');
    const keysRun = await runCli([...args('plain', '--key', 'docs/a-new.txt'), '--wait'], cliEnv);
    expect(exit(keysRun)).toMatchObject({ code: 0 });
    proxy.release();
    const code = await pruning.exited();
    expect({ code, out: pruning.output().slice(-2000) }).toMatchObject({ code: 0 });
    expect(pruning.output()).toContain('0 deleted');
    expect(await hasPoint('plain', 'docs/a-new.txt')).toBe(true);
    expect(await count('plain')).toBe(keys.size);
  }, 180_000);

  it('resumes a run with the mode, prune flag and filters it started with, and refuses a different one by name', async () => {
    proxy.holdAfterLists(proxy.lists() + 2);
    const scan = startCli(args('plain', '--page-size', '5'), viaProxy);
    await until('the scan to stall at its third page', async () => (proxy.held() > 0 ? true : undefined));
    await scan.stop('SIGKILL');
    proxy.release();
    const runId = runIdOf(scan.output());
    expect((await runs.get(runId))?.scanStatus).toBe('scanning');

    const withPrune = await runCli([...args('plain', '--prune'), '--run-id', runId], cliEnv);
    expect(exit(withPrune)).toMatchObject({ code: 2 });
    expect(withPrune.stderr).toContain('--prune');
    expect(withPrune.stderr).toContain(runId);
    const narrowed = await runCli([...args('plain', '--prefix', 'docs/t-1'), '--run-id', runId], cliEnv);
    expect(exit(narrowed)).toMatchObject({ code: 2 });
    expect(narrowed.stderr).toContain('--prefix');

    const resumed = await runCli([...args('plain'), '--run-id', runId, '--wait'], cliEnv);
    expect(exit(resumed)).toMatchObject({ code: 0 });
    expect(await count('plain')).toBe(keys.size);
  }, 180_000);

  it('prunes nothing when a resumed --prune run finds its seen-set gone, and prunes the deleted object on the next full scan', async () => {
    await deleteMany(env.s3client, BUCKET, [textKey(29)]);
    keys.delete(textKey(29));
    proxy.holdAfterLists(proxy.lists() + 2);
    const scan = startCli(args('plain', '--prune', '--page-size', '5'), viaProxy);
    await until('the scan to stall at its third page', async () => (proxy.held() > 0 ? true : undefined));
    const runId = runIdOf(scan.output());
    // the scanner lists one page ahead: the third listing is asked for while the second page is
    // still being recorded, so the kill waits for the run's record of both pages
    await until('the first two pages recorded', async () =>
      (await runs.get(runId))?.counters.scanned === 10 ? true : undefined,
    );
    await scan.stop('SIGKILL');
    proxy.release();
    // the seen-set expired (it is kept a week) or was evicted
    expect(await env.redis.del(`${env.prefix}:run:${runId}:seenh`)).toBe(1);
    const before = await count('plain');

    const resumed = await runCli([...args('plain'), '--run-id', runId, '--wait'], cliEnv);
    expect(exit(resumed)).toMatchObject({ code: 0 });
    // the resumed scan marked the keys of the pages it listed itself, not the first 10
    expect(resumed.stdout).toContain(
      `not pruned: the run's seen-set holds ${keys.size - 10} of the ${keys.size} keys it listed`,
    );
    expect(await count('plain')).toBe(before);

    const next = await runCli([...args('plain', '--prune'), '--wait'], cliEnv);
    expect(exit(next)).toMatchObject({ code: 0 });
    expect(next.stdout).toContain('1 deleted');
    expect(await hasPoint('plain', textKey(29))).toBe(false);
    expect(await count('plain')).toBe(keys.size);
    expect(await env.redis.exists(`${env.prefix}:run:${runIdOf(next.stdout)}:seenh`)).toBe(0);
  }, 180_000);

  it("waits for and reports the objects of jobs deduplicated into another run's pending jobs", async () => {
    const other = otherDeployment('c');
    const first = await runCli(args('dedup', '--mode', 'full'), other);
    expect(exit(first)).toMatchObject({ code: 0 });
    const second = startCli([...args('dedup', '--mode', 'full'), '--wait'], other);
    extra.push(second);
    await second.waitFor(/already pending/);
    expect(second.output()).toMatch(new RegExp(`queued ${keys.size} in 0 jobs \\(\\d+ already pending\\)`));
    const otherWorker = startCli(['worker'], other);
    extra.push(otherWorker);
    const code = await second.exited();
    expect({ code, out: second.output().slice(-2000) }).toMatchObject({ code: 0 });
    expect(second.output()).toContain('finished');
    const run = await new RunStore(env.redis, `${env.prefix}-c`).get(runIdOf(second.output()));
    expect(run?.counters.objectsIndexed).toBe(keys.size);
    expect(run?.counters.jobsFollowed).toBeGreaterThan(0);
    expect(run?.counters.jobsDone).toBe(run?.counters.jobsFollowed);
    await stopCli(otherWorker);
  }, 180_000);

  it('resumes the run of a reindex job whose worker was killed mid-scan instead of starting over', async () => {
    const other = { ...otherDeployment('d'), LOCK_DURATION_MS: '3000' };
    // the scan stalls at its first listing: the run exists, nothing is queued yet
    proxy.holdAfterLists(proxy.lists());
    const first = startCli(['worker'], { ...other, S3_ENDPOINT: proxy.endpoint });
    extra.push(first);
    await first.waitFor(/worker ready/);
    const added = await runCli(
      [
        'reindex',
        '--bucket',
        BUCKET,
        '--collection',
        'requeue',
        '--model',
        MODEL,
        '--dimension',
        '256',
        '--mode',
        'rebuild',
      ],
      other,
    );
    expect(exit(added)).toMatchObject({ code: 0 });
    await until('the reindex scan to stall at its first page', async () => (proxy.held() > 0 ? true : undefined));
    await first.stop('SIGKILL');
    proxy.release();
    const queue = new Queue('reindex', { connection: env.redis, prefix: `${env.prefix}-d` });
    const [job] = await queue.getJobs(['active', 'waiting', 'delayed']);
    await queue.close();
    const runId = String((job?.data as { runId?: string } | undefined)?.runId);
    expect(runId).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{6}$/);

    const second = startCli(['worker'], other);
    extra.push(second);
    const otherRuns = new RunStore(env.redis, `${env.prefix}-d`);
    const run = await until(
      'the resumed rebuild to finish',
      async () => {
        const r = await otherRuns.get(runId);
        return r?.finishedAt ? r : undefined;
      },
      90_000,
    );
    expect(run.notes.rebuild).toMatch(/^alias requeue -> /);
    expect(await aliasTarget('requeue')).toBe(`requeue--${runId.toLowerCase()}`);
    const builds = (await qdrant.getCollections()).collections
      .map((c) => c.name)
      .filter((n) => n.startsWith('requeue--'));
    expect(builds).toEqual([`requeue--${runId.toLowerCase()}`]);
    expect(await count('requeue')).toBe(keys.size);
    expect(await otherRuns.latest(10)).toEqual([runId]);
    await stopCli(second);
  }, 180_000);

  it('removes the old point of an object that is skipped at scan now', async () => {
    expect(await hasPoint('plain', textKey(3))).toBe(true);
    await put(textKey(3), '');
    const result = await runCli([...args('plain'), '--wait'], cliEnv);
    expect(exit(result)).toMatchObject({ code: 0 });
    expect(await hasPoint('plain', textKey(3))).toBe(false);
    const items = await runs.items(runIdOf(result.stdout));
    expect(items.get(textKey(3))).toMatchObject({ status: 'skipped', code: 'zero-bytes' });
    expect(await count('plain')).toBe(keys.size);
  }, 180_000);
});
