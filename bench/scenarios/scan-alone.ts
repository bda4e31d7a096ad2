/**
 * The scan alone, before against after (`npm run bench -- --scan-alone [--sizes 20000,100000]
 * [--repeat 3] [--trees after=.,before=/path/to/checkout,nothread=.:LIST_AHEAD_PAGES=0]
 * [--label NAME]`): issue 16's item 4 figure, scan + enqueue against a bare ListObjectsV2
 * loop, measured in turns so that two versions meet the same load on a shared machine.
 *
 * One generated S3 server (bench/gen-s3-child.ts), one redis-server and one Qdrant stand-in
 * serve every run. At each size and in each round, for each tree in turn: a bare listing
 * of the bucket (this process, 1,000 keys a page), then `mm-ingest index` from that tree
 * with `MAX_QUEUED_JOBS=0` and nothing draining (the producer alone, as the bucket-scale
 * scenario's "alone" run; through tsx, so that a tree needs no build), timed from its
 * `scanning` line to its `scanned` line. A tree is a checkout with its node_modules (a
 * symlink will do); `:VAR=value` after its directory sets a variable for its runs. Reports
 * each run and the median share of the bare listing per tree and size; writes
 * bench/results-scan-alone-LABEL.json.
 */
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { Redis } from 'ioredis';
import { startRedisServer } from '../../test/support/redis-server.js';
import { testS3Client } from '../../test/support/s3.js';
import { bareListing } from '../lib/bare-listing.js';
import { benchBaseEnv, newPrefix } from '../lib/env.js';
import { genBucket } from '../lib/gen-store.js';
import { ProcSampler, ROOT, spawnNode, stopChildren } from '../lib/procs.js';
import type { NodeProcess } from '../lib/procs.js';

interface AloneRun {
  tree: string;
  objects: number;
  round: number;
  bareObjectsPerS: number;
  scanS: number;
  wallS: number;
  objectsPerS: number;
  ratioToBare: number;
  cpuS: number;
  load: number;
}

const argValue = (argv: readonly string[], name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};

export async function scanAloneMain(argv: readonly string[]): Promise<void> {
  const sizes = (argValue(argv, '--sizes') ?? '20000,100000').split(',').map(Number);
  const repeat = Number(argValue(argv, '--repeat') ?? 3);
  const label = argValue(argv, '--label') ?? 'latest';
  // name=dir, or name=dir:VAR=value (that tree's runs get the variable: LIST_AHEAD_PAGES=0)
  const trees = (argValue(argv, '--trees') ?? 'this=.').split(',').map((t) => {
    const [name = '', where = '.'] = t.split(/=(.*)/s);
    const [dir = '.', variable] = where.split(/:(.*)/s);
    const [key, value = ''] = variable ? variable.split(/=(.*)/s) : [];
    return { name, dir: resolve(ROOT, dir), env: key ? { [key]: value } : {} };
  });
  const t0 = performance.now();
  const log = (s: string): void =>
    void process.stdout.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);
  const sampler = new ProcSampler();
  const redisServer = await startRedisServer();
  const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  const base = benchBaseEnv();
  const gen = spawnNode('bench/gen-s3-child.ts', [], base);
  const qdrant = spawnNode('bench/qdrant-child.ts', [], base);
  const children: NodeProcess[] = [gen, qdrant];
  const runs: AloneRun[] = [];
  try {
    const genUrl = (await gen.waitFor(/gen-s3 listening on (\S+)/))[1] ?? '';
    const qdrantUrl = (await qdrant.waitFor(/listening on (http:\/\/\S+)/))[1] ?? '';
    const client = testS3Client({
      endpoint: genUrl,
      credentials: { accessKeyId: 'bench', secretAccessKey: 'bench-secret' },
      kind: 'minio',
    });
    const bare = async (bucket: string): Promise<number> => {
      const { keys, seconds } = await bareListing(client, bucket);
      return keys / seconds;
    };

    for (const n of sizes) {
      const bucket = genBucket(n);
      await bare(bucket); // the bench's own client warmed once, as in bucket-scale's second listing
      for (let round = 1; round <= repeat; round++) {
        for (const tree of trees) {
          const bareObjectsPerS = await bare(bucket);
          const prefix = newPrefix(`alone-${tree.name}-${n}`);
          const load = loadavg()[0] ?? 0;
          const spawned = performance.now();
          const index = spawnNode(
            'src/cli/run.ts',
            ['index', '--bucket', bucket, '--collection', `alone-${n}`, '--model', 'qwen3-vl-embedding'],
            {
              ...base,
              REDIS_URL: redisServer.url,
              QUEUE_PREFIX: prefix,
              QDRANT_URL: qdrantUrl,
              S3_ENDPOINT: genUrl,
              S3_FORCE_PATH_STYLE: 'true',
              AWS_REGION: 'us-east-1',
              AWS_ACCESS_KEY_ID: 'bench',
              AWS_SECRET_ACCESS_KEY: 'bench-secret',
              MAX_QUEUED_JOBS: '0',
              ...tree.env,
            },
            [],
            tree.dir,
          );
          sampler.track(index.pid);
          const code = await index.exited;
          const ended = performance.now();
          sampler.sample();
          const scanned = /scanned (\d+) objects/.exec(index.output());
          if (code !== 0 || Number(scanned?.[1]) !== n)
            throw new Error(`index from ${tree.name} failed (${code}):\n${index.output().slice(-2000)}`);
          const scanS =
            ((index.lineTime(/: scanned \d+ objects/) ?? ended) - (index.lineTime(/: scanning s3:/) ?? spawned)) / 1000;
          const run: AloneRun = {
            tree: tree.name,
            objects: n,
            round,
            bareObjectsPerS,
            scanS,
            wallS: (ended - spawned) / 1000,
            objectsPerS: n / scanS,
            ratioToBare: n / scanS / bareObjectsPerS,
            cpuS: sampler.reading(index.pid).cpu,
            load,
          };
          runs.push(run);
          log(
            `${n} ${tree.name} #${round}: ${run.objectsPerS.toFixed(0)}/s against ${bareObjectsPerS.toFixed(0)}/s bare (${(run.ratioToBare * 100).toFixed(0)}%), scan ${scanS.toFixed(2)} s, wall ${run.wallS.toFixed(2)} s, CPU ${run.cpuS.toFixed(2)} s, load ${load.toFixed(1)}`,
          );
          await redis.eval(
            `for _, k in ipairs(redis.call('KEYS', ARGV[1])) do redis.call('UNLINK', k) end return 1`,
            0,
            `${prefix}:*`,
          );
        }
      }
    }
    client.destroy();
    const summary = sizes.flatMap((n) =>
      trees.map((t) => {
        const mine = runs.filter((r) => r.objects === n && r.tree === t.name);
        return {
          objects: n,
          tree: t.name,
          medianRatioToBare: median(mine.map((r) => r.ratioToBare)),
          medianObjectsPerS: median(mine.map((r) => r.objectsPerS)),
          medianBareObjectsPerS: median(mine.map((r) => r.bareObjectsPerS)),
          medianCpuS: median(mine.map((r) => r.cpuS)),
        };
      }),
    );
    for (const s of summary)
      log(
        `median ${s.objects} ${s.tree}: ${s.medianObjectsPerS.toFixed(0)}/s against ${s.medianBareObjectsPerS.toFixed(0)}/s bare, ${(s.medianRatioToBare * 100).toFixed(0)}% (median of the runs' shares), CPU ${s.medianCpuS.toFixed(2)} s`,
      );
    writeFileSync(
      `${ROOT}/bench/results-scan-alone-${label}.json`,
      `${JSON.stringify({ label, at: new Date().toISOString(), trees, runs, summary }, null, 2)}\n`,
    );
  } finally {
    sampler.stop();
    for (const c of children) await c.stop();
    stopChildren();
    await redis.quit().catch(() => undefined);
    await redisServer.close();
  }
}
