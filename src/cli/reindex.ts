/**
 * `mm-ingest reindex` (put a reindex request on the control queue) and `mm-ingest schedule`
 * (a BullMQ job scheduler that puts one there on a cron pattern, for nightly runs).
 */
import type { Command } from 'commander';
import { REINDEX_JOB_OPTIONS } from '../../jobs/reindex-job.js';
import { loadConfig } from '../config.js';
import type { Config } from '../config.js';
import { ConfigError } from '../errors.js';
import { resolveDimension, resolveModel } from '../models.js';
import { reindexQueue } from '../connections.js';
import { parseRunRequest, reindexJobData } from '../run-request.js';
import type { ReindexJobData } from '../run-request.js';
import { commandRedis } from './connect.js';
import { collect, positiveInt, withConnectionFlags } from './options.js';

/** The request's flags (run-request.ts checks them; `--key` gives `keys`) and the connection flags. */
interface RequestFlags {
  key?: string[];
  [flag: string]: unknown;
}

function withRequestFlags(cmd: Command): Command {
  return cmd
    .requiredOption('--bucket <name>', 'the S3 bucket')
    .option('--prefix <prefix>', 'only keys under this prefix')
    .option('--key <key>', 'only these keys (repeatable); deleted keys lose their points', collect)
    .requiredOption('--collection <name>', 'the Qdrant collection (or alias, for a rebuild)')
    .requiredOption('--model <name>', 'the embedding model')
    .option('--dimension <n>', "vector dimension (default: the model's)", positiveInt('--dimension'))
    .option('--mode <mode>', 'incremental (default), full or rebuild')
    .option('--prune', 'delete the points of objects that no longer exist (after a completed scan)');
}

/** The job data, checked the way the reindex worker will check it (its model and dimension too). */
function requestData(flags: RequestFlags, config: Config): ReindexJobData {
  const request = parseRunRequest({ ...flags, keys: flags.key }, 'flag');
  resolveDimension(resolveModel(request.model, config.models), request.dimension);
  return reindexJobData(request);
}

/** Runs `fn` with the reindex queue; `check` refuses a wrong request (by its configuration) before Redis is reached. */
async function withReindexQueue<T>(
  flags: Record<string, unknown>,
  fn: (queue: ReturnType<typeof reindexQueue>, config: Config) => Promise<T>,
  check?: (config: Config) => void,
): Promise<T> {
  const config = loadConfig(process.env, flags);
  check?.(config);
  const connection = await commandRedis(config);
  const queue = reindexQueue(config, connection);
  try {
    return await fn(queue, config);
  } finally {
    await queue.close();
    await connection.quit();
  }
}

export function registerReindexCommands(program: Command): void {
  withConnectionFlags(
    withRequestFlags(program.command('reindex').description('ask the workers for a reindex through the control queue')),
  ).action(async (flags: RequestFlags) => {
    await withReindexQueue(
      flags as unknown as Record<string, unknown>,
      async (queue, config) => {
        const job = await queue.add('reindex', requestData(flags, config), REINDEX_JOB_OPTIONS);
        process.stdout.write(`reindex job ${job.id} queued on ${queue.qualifiedName}\n`);
      },
      (config) => void requestData(flags, config),
    );
  });

  const schedule = program.command('schedule').description('nightly (cron) reindex requests');
  withConnectionFlags(
    withRequestFlags(
      schedule
        .command('add')
        .description('add or replace a schedule')
        .requiredOption('--name <name>', "the schedule's name")
        .requiredOption('--cron <pattern>', 'cron pattern, e.g. "0 2 * * *" for 02:00 every day')
        .option('--tz <zone>', 'time zone of the pattern (default UTC)'),
    ),
  ).action(async (flags: RequestFlags & { name: string; cron: string; tz?: string }) => {
    await withReindexQueue(
      flags as unknown as Record<string, unknown>,
      async (queue, config) => {
        const data = requestData(flags, config);
        try {
          await queue.upsertJobScheduler(
            flags.name,
            { pattern: flags.cron, tz: flags.tz ?? 'UTC' },
            {
              name: 'reindex',
              data,
              opts: { ...REINDEX_JOB_OPTIONS, removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } },
            },
          );
        } catch (err) {
          throw new ConfigError('--cron', `"${flags.cron}" is not a valid schedule (${(err as Error).message})`);
        }
        const [entry] = (await queue.getJobSchedulers()).filter((s) => s.key === flags.name || s.id === flags.name);
        process.stdout.write(
          `schedule ${flags.name}: "${flags.cron}"${flags.tz ? ` ${flags.tz}` : ''}; next run ${entry?.next ? new Date(entry.next).toISOString() : 'unknown'}\n`,
        );
      },
      (config) => void requestData(flags, config),
    );
  });

  withConnectionFlags(
    schedule.command('list').description('list the schedules').option('--json', 'machine-readable output'),
  ).action(async (flags: { json?: boolean }) => {
    await withReindexQueue(flags, async (queue) => {
      const list = await queue.getJobSchedulers();
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
        return;
      }
      if (list.length === 0) process.stdout.write('no schedules\n');
      for (const s of list) {
        const d = (s.template?.data ?? {}) as Partial<ReindexJobData>;
        process.stdout.write(
          `${s.id ?? s.key}  "${s.pattern ?? ''}"${s.tz ? ` ${s.tz}` : ''}  next ${s.next ? new Date(s.next).toISOString() : '-'}  s3://${d.bucket ?? '?'}/${d.prefix ?? ''} -> ${d.collection ?? '?'} (${d.model ?? '?'}, ${d.mode ?? 'incremental'}${d.prune ? ', prune' : ''})\n`,
        );
      }
    });
  });

  withConnectionFlags(
    schedule.command('remove').description('remove a schedule').argument('<name>', "the schedule's name"),
  ).action(async (name: string, flags: Record<string, unknown>) => {
    await withReindexQueue(flags, async (queue) => {
      const removed = await queue.removeJobScheduler(name);
      if (!removed) throw new ConfigError('schedule', `there is no schedule named "${name}"`);
      process.stdout.write(`schedule ${name} removed\n`);
    });
  });
}
