/** The Redis check: its version, `maxmemory-policy` and persistence, from INFO. */
import { bounded, unanswered, row } from './rows.js';
import type { CheckRow, DoctorRedis, DoctorTarget } from './rows.js';

/** BullMQ's own minimum. */
export const MIN_REDIS_VERSION = [6, 2, 0] as const;

/** INFO's `key:value` lines as a map. */
export function parseInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon > 0) out.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return out;
}

function versionAtLeast(version: string, min: readonly number[]): boolean {
  const parts = version.split('.').map((p) => Number.parseInt(p, 10) || 0);
  for (let i = 0; i < min.length; i++) {
    const have = parts[i] ?? 0;
    const need = min[i] ?? 0;
    if (have !== need) return have > need;
  }
  return true;
}

export async function checkRedis(redis: DoctorRedis, t: DoctorTarget): Promise<CheckRow[]> {
  let info: Map<string, string>;
  try {
    info = parseInfo(await bounded(redis.info(), t.timeoutMs));
  } catch (err) {
    const skipped = 'not checked: Redis did not answer';
    return [
      row(
        'redis',
        'fail',
        unanswered(t.redisUrl, err),
        'start Redis, or fix REDIS_URL / --redis-url (and its password)',
      ),
      row('redis eviction', 'skip', skipped),
      row('redis persistence', 'skip', skipped),
    ];
  }
  const rows: CheckRow[] = [];
  const version = info.get('redis_version') ?? 'unknown';
  const mode = info.get('redis_mode');
  const where = `Redis ${version}${mode !== undefined && mode !== 'standalone' ? ` (${mode})` : ''} at ${t.redisUrl}`;
  rows.push(
    versionAtLeast(version, MIN_REDIS_VERSION)
      ? row('redis', 'ok', where, '', { version })
      : row(
          'redis',
          'fail',
          `${where}: BullMQ needs Redis >= ${MIN_REDIS_VERSION.join('.')}`,
          'upgrade Redis to 6.2 or later',
          { version },
        ),
  );

  const policy = info.get('maxmemory_policy');
  const maxmemory = info.get('maxmemory_human') ?? info.get('maxmemory');
  const limit =
    maxmemory === undefined || maxmemory === '0' || maxmemory === '0B' ? 'no maxmemory' : `maxmemory ${maxmemory}`;
  if (policy === undefined) {
    rows.push(
      row(
        'redis eviction',
        'warn',
        'INFO does not report maxmemory_policy',
        'make sure the server runs with maxmemory-policy noeviction (BullMQ needs it)',
      ),
    );
  } else if (policy === 'noeviction') {
    rows.push(row('redis eviction', 'ok', `maxmemory-policy noeviction, ${limit}`, '', { maxmemoryPolicy: policy }));
  } else {
    rows.push(
      row(
        'redis eviction',
        'fail',
        `maxmemory-policy ${policy} (${limit}): under memory pressure Redis deletes keys, queued jobs and BullMQ's own among them`,
        "set maxmemory-policy noeviction (redis-cli CONFIG SET maxmemory-policy noeviction, and in redis.conf or the managed service's parameters)",
        { maxmemoryPolicy: policy },
      ),
    );
  }

  const aof = info.get('aof_enabled');
  if (aof === '1') {
    rows.push(row('redis persistence', 'ok', 'AOF on', '', { aof: true }));
  } else {
    rows.push(
      row(
        'redis persistence',
        'warn',
        'AOF off: queued jobs and run records die with a Redis restart',
        "turn on AOF: redis-cli CONFIG SET appendonly yes, and appendonly yes in redis.conf (or the managed service's persistence setting)",
        { aof: false },
      ),
    );
  }
  return rows;
}
