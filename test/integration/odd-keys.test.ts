/**
 * Keys XML 1.0 cannot carry, fed for real: objects whose keys hold control characters
 * (ESC, \u0001, CR, LF, BEL), a noncharacter (U+FFFE), and `+`, space and `%` (which URL
 * encoding must not confuse) are put in MinIO and indexed, pruned and reported through the
 * real CLI (`index --wait`, `index --prune`, `status`, `failures`), a worker, the simulator,
 * real Redis and the Qdrant stand-in.
 *
 * Without `EncodingType=url`, MinIO lists ESC and U+FFFE as U+FFFD: the pipeline fetched a key
 * that does not exist (skipped `vanished`) and a prune would compare the wrong keys.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { QdrantClient } from '@qdrant/js-client-rest';
import { pointId } from '../../src/ids.js';
import { RunStore } from '../../src/runs.js';
import { DATA_INSPECTION_MARKER } from '../../src/simulator/index.js';
import { prose } from '../support/corpus.js';
import { png } from '../support/media-fixtures.js';
import { allPoints } from '../support/qdrant-points.js';
import { figures, runCli, runIdOf, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { BackgroundCli, CliResult, PipelineEnv } from '../support/pipeline.js';
import { createBucket, deleteObject, putObject } from '../support/s3.js';

const MODEL = 'qwen3-vl-embedding';
const BUCKET = 'odd-keys';
const expectExit = (result: CliResult, code: number): void =>
  expect({ code: result.code, stderr: result.stderr.slice(-2000), stdout: result.stdout.slice(-2000) }).toMatchObject({
    code,
  });

/** Keys of objects to index (texts and an image). */
const INDEXED = [
  'odd/esc\u001b[31mred.txt',
  'odd/ctl\u0001start.txt',
  'odd/cr\rand\nlf.txt',
  'odd/bell\u0007.md',
  'odd/nonchar\uFFFE.txt',
  'odd/plus+ space %25 percent.txt',
  'odd/del\u007f and c1 \u0085.txt',
  'odd/plain.txt',
  'odd/img\u001b.png',
];
/** Skipped at scan (unsupported type): printed by `status`. */
const UNSUPPORTED = 'odd/clear\u001b[2J.xyz';
/** Refused by the API (the simulator's moderation hook): printed by `failures`. */
const REFUSED = 'odd/title\u001b]0;pwned\u0007.txt';
/** What must never reach a terminal raw. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

describe('keys with characters XML cannot carry', () => {
  let env: PipelineEnv;
  let cliEnv: NodeJS.ProcessEnv;
  let worker: BackgroundCli | undefined;
  let qdrant: QdrantClient;
  const collection = (): string => `odd-${env.prefix}`;
  const indexArgs = (): string[] => [
    'index',
    '--bucket',
    BUCKET,
    '--collection',
    collection(),
    '--model',
    MODEL,
    '--dimension',
    '256',
    '--wait',
  ];
  let runId = '';

  beforeAll(async () => {
    env = await startPipelineEnv();
    cliEnv = { ...env.env, RATE_LIMIT: 'off' };
    qdrant = new QdrantClient({ url: env.qdrantUrl, checkCompatibility: false });
    await createBucket(env.s3client, BUCKET);
    for (const [i, key] of INDEXED.entries()) {
      await putObject(
        env.s3client,
        BUCKET,
        key,
        key.endsWith('.png') ? png(30, 20, 40) : `${prose(300 + i, 20)} (${i})`,
      );
    }
    await putObject(env.s3client, BUCKET, UNSUPPORTED, Buffer.from([1, 2, 3]));
    await putObject(env.s3client, BUCKET, REFUSED, `a refused text ${DATA_INSPECTION_MARKER}`);
    worker = startCli(['worker', '--concurrency', '2'], cliEnv);
    await worker.waitFor(/worker ready/);
  }, 120_000);

  afterAll(async () => {
    if (worker) {
      const timer = setTimeout(() => worker?.child.kill('SIGKILL'), 15_000);
      await worker.stop('SIGTERM');
      clearTimeout(timer);
    }
    await env?.close();
  });

  it('lists and indexes every such key under its exact name', async () => {
    const started = Date.now();
    const result = await runCli(indexArgs(), cliEnv);
    // one object is refused by the API: exit 1, everything else indexed
    expectExit(result, 1);
    runId = runIdOf(result.stdout);
    const items = await new RunStore(env.redis, env.prefix).items(runId);
    const outcomes = Object.fromEntries([...items].map(([k, o]) => [k, `${o.status} ${o.code}`]));
    expect(outcomes).toEqual({ [UNSUPPORTED]: 'skipped unsupported-type', [REFUSED]: 'failed DataInspectionFailed' });
    const points = await allPoints(qdrant, collection());
    expect(points.map((p) => String(p.payload.key)).sort()).toEqual([...INDEXED].sort());
    for (const p of points) expect(p.id).toBe(pointId(BUCKET, String(p.payload.key), 0));
    figures(
      `odd keys: index --wait exit ${result.code} in ${((Date.now() - started) / 1000).toFixed(1)} s, ${points.length} of ${INDEXED.length} keys indexed under their exact names`,
    );
  }, 180_000);

  it('prints keys to a terminal with their control characters escaped', async () => {
    const status = await runCli(['status', '--run', runId], cliEnv);
    expectExit(status, 0);
    expect(status.stdout).not.toMatch(CONTROL);
    expect(status.stdout).toContain('odd/clear\\x1b[2J.xyz');
    expect(status.stdout).toContain('odd/title\\x1b]0;pwned\\x07.txt');

    const failures = await runCli(['failures', '--run', runId], cliEnv);
    expectExit(failures, 0);
    expect(failures.stdout).not.toMatch(CONTROL);
    const line = failures.stdout.split('\n').find((l) => l.includes('DataInspectionFailed') && l.includes('odd/title'));
    expect(line).toContain('odd/title\\x1b]0;pwned\\x07.txt');
    // JSON keeps the exact key (JSON escapes control characters itself)
    const json = await runCli(['failures', '--run', runId, '--json'], cliEnv);
    expect(Object.keys((JSON.parse(json.stdout) as { items: Record<string, unknown> }).items)).toEqual([REFUSED]);
    figures(
      `odd keys: status prints ${JSON.stringify(status.stdout.split('\n').find((l) => l.includes('odd/clear')))}`,
    );
  }, 60_000);

  it('prunes exactly the deleted odd key and keeps the others', async () => {
    const gone = INDEXED[0]!;
    await deleteObject(env.s3client, BUCKET, gone);
    const result = await runCli([...indexArgs(), '--prune'], cliEnv);
    expectExit(result, 1);
    const keys = (await allPoints(qdrant, collection())).map((p) => String(p.payload.key)).sort();
    expect(keys).toEqual(INDEXED.filter((k) => k !== gone).sort());
    const run = await new RunStore(env.redis, env.prefix).get(runIdOf(result.stdout));
    expect(run?.counters).toMatchObject({ unchanged: INDEXED.length - 1, deleted: 1 });
  }, 180_000);
});
