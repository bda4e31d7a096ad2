/**
 * The S3 GetObject scenario (`npm run bench -- --s3-gets [--gets 3000]`): what one GetObject
 * through mm-ingest's object store (src/s3-store.ts, the SDK's client) costs in CPU, the call
 * a worker makes once per text. The store reads short texts from the generated bucket
 * (bench/gen-s3-child.ts, its own process, not counted), 8 at a time as a job's fetches go,
 * after 500 reads to warm up; the figure is this process's CPU (process.cpuUsage) per read.
 */
import { genBucket, genKey } from '../lib/gen-store.js';
import { spawnNode, stopChildren } from '../lib/procs.js';
import { createS3Store } from '../../src/s3-store.js';

const COUNT = 10_000;
const AT_ONCE = 8;

export async function s3GetsMain(argv: readonly string[]): Promise<void> {
  const i = argv.indexOf('--gets');
  const gets = Number(i >= 0 ? argv[i + 1] : 3000);
  if (!Number.isInteger(gets) || gets < 1) throw new Error(`--gets must be a whole number, got ${argv[i + 1]}`);
  const gen = spawnNode('bench/gen-s3-child.ts', [], { PATH: process.env.PATH, HOME: process.env.HOME });
  try {
    const url = (await gen.waitFor(/gen-s3 listening on (\S+)/))[1] ?? '';
    const store = createS3Store({
      endpoint: url,
      credentials: { accessKeyId: 'bench', secretAccessKey: 'bench-secret' },
    });
    const read = async (n: number): Promise<void> => {
      let next = 0;
      await Promise.all(
        Array.from({ length: AT_ONCE }, async () => {
          while (next < n) await store.get(genBucket(COUNT), genKey(next++ % COUNT), [0, 1024 * 1024]);
        }),
      );
    };
    await read(500);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await read(gets);
    const cpu = process.cpuUsage(cpu0);
    const ms = (cpu.user + cpu.system) / 1000 / gets;
    process.stdout.write(
      `${gets} GetObjects, ${AT_ONCE} at a time: ${ms.toFixed(3)} ms CPU each, ${((performance.now() - t0) / gets).toFixed(3)} ms wall each\n`,
    );
  } finally {
    await gen.stop();
    stopChildren();
  }
}
