import { describe, expect, it } from '@jest/globals';
import { hasHashTag, loadConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';

/** The ConfigError loadConfig throws, as "setting: problem". */
function refusal(env: NodeJS.ProcessEnv, flags: Record<string, unknown> = {}): string {
  try {
    loadConfig(env, flags);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('loadConfig accepted it');
}

describe('Redis topology settings', () => {
  it('keeps a single Redis as it was: the default URL and prefix, no cluster', () => {
    const c = loadConfig({});
    expect([c.redisUrl, c.redisCluster, c.queuePrefix]).toEqual(['redis://127.0.0.1:6379', false, 'mm-ingest']);
    expect(loadConfig({ QUEUE_PREFIX: '{mm-ingest}' }).queuePrefix).toBe('{mm-ingest}');
  });

  it('takes a cluster as seed nodes with REDIS_CLUSTER or --redis-cluster, and a hash-tagged prefix', () => {
    const c = loadConfig({
      REDIS_CLUSTER: 'true',
      REDIS_URL: 'redis://10.0.0.1:6379,redis://10.0.0.2:6380',
      QUEUE_PREFIX: '{mm-ingest}',
    });
    expect([c.redisCluster, c.redisUrl]).toEqual([true, 'redis://10.0.0.1:6379,redis://10.0.0.2:6380']);
    expect(loadConfig({ QUEUE_PREFIX: 'prod-{ingest}' }, { redisCluster: true }).redisCluster).toBe(true);
  });

  it('refuses a cluster prefix without a hash tag, naming the variable or flag it came from and the fix', () => {
    expect(refusal({ REDIS_CLUSTER: 'true' })).toBe(
      'QUEUE_PREFIX: on a Redis Cluster (REDIS_CLUSTER) the prefix needs a hash tag so that every key of a queue and of a run lands in one slot: use "{mm-ingest}" (got "mm-ingest", the default)',
    );
    expect(refusal({ REDIS_CLUSTER: 'yes', QUEUE_PREFIX: 'nightly' })).toMatch(
      /^QUEUE_PREFIX: .* use "\{nightly\}" \(got "nightly"\)$/,
    );
    expect(refusal({ QUEUE_PREFIX: '{ok}' }, { redisCluster: true, queuePrefix: 'plain' })).toMatch(
      /^--queue-prefix: on a Redis Cluster \(--redis-cluster\)/,
    );
  });

  it('refuses several nodes without REDIS_CLUSTER, and malformed URLs and prefixes', () => {
    expect(refusal({ REDIS_URL: 'redis://a:6379,redis://b:6379' })).toMatch(
      /^REDIS_URL: lists several nodes; for a Redis Cluster set REDIS_CLUSTER=true/,
    );
    expect(refusal({ REDIS_URL: 'redis://a:6379,http://b' })).toMatch(
      /^REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL/,
    );
    for (const prefix of ['a{b', '{}', '{a}{b}', 'a}b{', 'a b'])
      expect(refusal({ QUEUE_PREFIX: prefix })).toMatch(
        /^QUEUE_PREFIX: letters, digits, _ \. - and at most one hash tag/,
      );
  });

  it('knows a hash tag when it sees one', () => {
    expect(['{mm-ingest}', 'x{y}', '{a}:b'].map(hasHashTag)).toEqual([true, true, true]);
    expect(['mm-ingest', '{}', 'a{b'].map(hasHashTag)).toEqual([false, false, false]);
  });
});
