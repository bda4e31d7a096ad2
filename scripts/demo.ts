/**
 * `npm run demo`: the main job end to end on a fresh machine. Whatever is not configured
 * is stood in for, and said so:
 * - Redis: REDIS_URL, else a `redis-server` it starts (if one is on PATH);
 * - S3: S3_ENDPOINT + DEMO_BUCKET, else a local MinIO (when `npm run setup` built it) or s3rver, seeded with a small sample corpus;
 * - the API: DASHSCOPE_API_KEY, else the local simulator;
 * - Qdrant: QDRANT_URL if it answers, else the in-process Qdrant stand-in.
 * It indexes with a worker in this process, prints the run report and ends with a search.
 * The stand-ins are the project's test servers (s3rver and the stand-ins are dev dependencies).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { main } from '../src/cli/main.js';
import { loadConfig } from '../src/config.js';
import { startSimulator } from '../src/simulator/index.js';
import { startEmbedWorker } from '../workers/embed-worker.js';
import { jpeg, mp4, png } from '../test/support/media-fixtures.js';
import { startQdrantStandin } from '../test/support/qdrant-standin.js';
import { startMinio, minioBinary } from '../test/support/minio.js';
import { createBucket, putObject, s3Env, testS3Client } from '../test/support/s3.js';
import { startS3rver } from '../test/support/s3rver.js';

const say = (line: string): void => void process.stdout.write(`demo: ${line}\n`);
const cleanups: (() => Promise<unknown>)[] = [];

const SAMPLE: Record<string, string> = {
  'docs/en/harbor.txt': 'The old harbor lighthouse guides fishing boats home through fog at night.',
  'docs/en/orbit.txt': 'A satellite in low earth orbit circles the planet every ninety minutes.',
  'docs/en/garden.md': '# Garden notes\nTomatoes and basil grow well together in a sunny garden bed.',
  'docs/fr/cuisine.txt': 'La cuisine française aime le beurre, le pain frais et les fromages affinés.',
  'docs/de/bahn.txt': 'Der Zug nach Berlin fährt jeden Morgen pünktlich um sieben Uhr ab.',
  'docs/es/mercado.txt': 'El mercado del sábado vende frutas, verduras y flores de la región.',
  'docs/zh/检索.txt': '向量检索可以在同一个语义空间里比较文本、图像和视频。',
  'docs/ja/桜.txt': '春になると公園の桜が満開になり、多くの人が花見を楽しみます。',
};

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(1500) });
    return res.ok;
  } catch {
    return false;
  }
}

async function redisAnswers(url: string): Promise<boolean> {
  const r = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 1000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

async function startRedis(): Promise<string | undefined> {
  const dir = await mkdtemp(join(tmpdir(), 'mm-ingest-demo-redis-'));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: 'ignore' },
  );
  const failed = await new Promise<boolean>((resolve) => {
    child.once('error', () => resolve(true));
    setTimeout(() => resolve(false), 300);
  });
  if (failed) return undefined;
  cleanups.push(async () => {
    child.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  });
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 50 && !(await redisAnswers(url)); i++) await new Promise((r) => setTimeout(r, 100));
  return url;
}

async function run(): Promise<number> {
  // the SDK's notice that its 2027 releases need Node 22 is for maintainers, not a first run
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // Redis
  let redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  if (!(await redisAnswers(redisUrl))) {
    const started = await startRedis();
    if (!started) {
      say(
        `no Redis at ${redisUrl} and no redis-server on PATH: set REDIS_URL, install Redis (apt-get install redis-server), or run \`docker compose up -d\``,
      );
      return 1;
    }
    say(`no Redis at ${redisUrl}: started redis-server at ${started}`);
    redisUrl = started;
  }
  // S3
  let bucket = process.env.DEMO_BUCKET ?? '';
  const env: Record<string, string> = {
    REDIS_URL: redisUrl,
    QUEUE_PREFIX: process.env.QUEUE_PREFIX ?? `mm-ingest-demo-${Date.now()}`,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  };
  if (!process.env.S3_ENDPOINT || !bucket) {
    // MinIO when `npm run setup` has built it; s3rver (a weaker stand-in) otherwise
    const s3 = minioBinary() ? await startMinio() : await startS3rver();
    cleanups.push(() => s3.close());
    bucket = 'demo';
    const client = testS3Client(s3);
    await createBucket(client, bucket);
    for (const [key, text] of Object.entries(SAMPLE)) await putObject(client, bucket, key, text);
    await putObject(client, bucket, 'images/sunset.png', png(320, 200, 180));
    await putObject(client, bucket, 'images/portrait.jpg', jpeg(120, 160));
    await putObject(client, bucket, 'videos/clip.mp4', mp4(4, 4000));
    Object.assign(env, s3Env(s3));
    say(
      `no S3_ENDPOINT/DEMO_BUCKET: started a local S3 server (${s3.kind}) at ${s3.endpoint} with ${Object.keys(SAMPLE).length} texts in 6 languages, 2 images and a video in bucket "demo"`,
    );
  }
  // the API
  if (!process.env.DASHSCOPE_API_KEY) {
    // the simulator runs here and can reach a local store, which the provider could not
    const sim = await startSimulator({ apiKey: 'sk-demo-local-simulator', port: 0, allowPrivateUrls: true });
    cleanups.push(() => sim.close());
    Object.assign(env, {
      DASHSCOPE_API_KEY: 'sk-demo-local-simulator',
      DASHSCOPE_BASE_URL: sim.url,
      ALLOW_PRIVATE_MEDIA_URLS: 'true',
    });
    say(
      `no DASHSCOPE_API_KEY: using the local API simulator at ${sim.url} (deterministic vectors, not real embeddings)`,
    );
  }
  // Qdrant
  const qdrantUrl = process.env.QDRANT_URL ?? 'http://127.0.0.1:6333';
  if (!(await answers(`${qdrantUrl}/readyz`))) {
    const standin = await startQdrantStandin();
    cleanups.push(() => standin.close());
    env.QDRANT_URL = standin.url;
    say(
      `no Qdrant answers at ${qdrantUrl}: using the in-process Qdrant stand-in at ${standin.url} (in memory, gone when the demo ends)`,
    );
  }
  Object.assign(process.env, env);

  const config = loadConfig(process.env);
  const worker = startEmbedWorker(config);
  cleanups.push(() => worker.close());
  await worker.worker.waitUntilReady();
  const collection = process.env.DEMO_COLLECTION ?? 'demo';
  const model = process.env.DEMO_MODEL ?? 'qwen3-vl-embedding';
  say(`indexing s3://${bucket} into "${collection}" with ${model}`);
  await main([
    'node',
    'mm-ingest',
    'index',
    '--bucket',
    bucket,
    '--collection',
    collection,
    '--model',
    model,
    '--dimension',
    '1024',
    '--wait',
  ]);
  if (process.exitCode) return Number(process.exitCode);
  await main(['node', 'mm-ingest', 'runs', '--limit', '1']);
  const redis = new Redis(config.redisUrl);
  const [runId] = await redis.zrevrange(`${config.queuePrefix}:runs`, 0, 0);
  await redis.quit();
  if (runId) await main(['node', 'mm-ingest', 'runs', 'show', runId]);
  const query = process.env.DEMO_QUERY ?? 'lighthouse guides boats through the fog';
  say(`search: "${query}"`);
  await main(['node', 'mm-ingest', 'search', query, '--collection', collection, '--limit', '3']);
  return Number(process.exitCode ?? 0);
}

let code = 1;
try {
  code = await run();
} catch (err) {
  say(`failed: ${(err as Error).message}`);
} finally {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
}
process.exit(code);
