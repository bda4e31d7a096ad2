/** Flags shared by the commands that talk to Redis, S3, Qdrant or the API (same meaning as the variables). */
import { InvalidArgumentError } from 'commander';
import type { Command } from 'commander';

export function withConnectionFlags(cmd: Command): Command {
  return cmd
    .option(
      '--redis-url <url>',
      'Redis for the queue (REDIS_URL; default redis://127.0.0.1:6379); for a cluster: seed nodes, comma-separated',
    )
    .option(
      '--redis-cluster',
      'REDIS_URL names nodes of a Redis Cluster (REDIS_CLUSTER; the prefix then needs a hash tag, e.g. {mm-ingest})',
    )
    .option(
      '--queue-prefix <prefix>',
      'key prefix of queues and runs (QUEUE_PREFIX; default mm-ingest; {mm-ingest} on a cluster)',
    )
    .option('--qdrant-url <url>', 'Qdrant (QDRANT_URL; default http://127.0.0.1:6333)')
    .option('--s3-endpoint <url>', 'S3-compatible endpoint (S3_ENDPOINT; empty: AWS)')
    .option('--base-url <url>', 'embedding API base URL (DASHSCOPE_BASE_URL; default Beijing)')
    .option('--model-overrides <json>', 'per-model limit overrides (MODEL_OVERRIDES)')
    .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (LOG_LEVEL; default info)');
}

/** Repeatable option collector for commander. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function positiveInt(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0)
      throw new InvalidArgumentError(`${name} must be a non-negative integer, got "${v}"`);
    return n;
  };
}
