/**
 * The bucket-scale scenario's stand-in consumer: takes embed jobs off the queue and
 * records each as done (every object indexed, no API call, no point written), so that the
 * producer's side (listing, queuing, backpressure, Redis, memory) can be measured at sizes
 * whose embedding this machine could not pay for. Benchmark code, not product; the real
 * pipeline is measured with real workers at the sizes that fit.
 *
 * Args: REDIS_URL PREFIX CONCURRENCY JOB_MS. Prints `drain ready`; SIGTERM closes it.
 */
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { jobNumber, jobObjects } from '../src/embed-job.js';
import type { EmbedJobData } from '../src/embed-job.js';
import { RunStore } from '../src/runs.js';
import { recordJobResult } from '../src/runner.js';
import type { VectorStore } from '../src/vector-store.js';

const [url = '', prefix = '', concurrency = '8', jobMs = '0'] = process.argv.slice(2);
const connection = new Redis(url, { maxRetriesPerRequest: null });
const runs = new RunStore(connection, prefix);
// a finished run's end only touches vectors for rebuilds, which this scenario does not run
const vectors = {} as VectorStore;
const worker = new Worker(
  'embed',
  async (job) => {
    const data = job.data as EmbedJobData;
    if (Number(jobMs) > 0) await sleep(Number(jobMs));
    const n = jobObjects(data).length;
    const result = { status: 'done' as const, objects: n, indexed: n, skipped: 0, failed: 0, points: n };
    await recordJobResult({ runs, vectors }, data.runId, job.id ?? '', result, {
      number: jobNumber(data),
      jobKey: `${prefix}:embed:${job.id ?? ''}`,
    });
    return result;
  },
  { connection, prefix, concurrency: Number(concurrency) },
);
await worker.waitUntilReady();
process.stdout.write('drain ready\n');
const stop = (): void => {
  void worker.close().finally(() => void connection.quit().finally(() => process.exit(0)));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
