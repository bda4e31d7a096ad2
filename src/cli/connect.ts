/**
 * A command's connections: Redis opened and checked, S3 and Qdrant checked, all at once
 * and each within CONNECT_TIMEOUT_MS, before the command does anything (src/reach.ts).
 * A service that cannot be reached is a ServiceUnreachableError, printed by main.ts as one
 * line (exit 2).
 *
 * A command's Redis connection also gives up on a Redis it loses for longer than
 * CONNECT_TIMEOUT_MS while it runs (a follower with `--wait`, say): the same one line and
 * exit 2, where it used to retry forever. (A cluster connection is checked at start only.)
 */
import type { Config } from '../config.js';
import { qdrantLabel, redisConnection, redisLabel, s3Label } from '../connections.js';
import type { RedisClient } from '../connections.js';
import { causeOf, reachQdrant, reachRedis, reachS3, unreachable } from '../reach.js';
import type { AnsweringStore } from '../reach.js';
import type { VectorStore } from '../vector-store.js';
import { exitWithError } from './exit.js';

/** The services a command needs besides Redis. */
export interface Needs {
  /** The store and the bucket the command lists or reads. */
  readonly s3?: { readonly store: AnsweringStore; readonly bucket: string };
  readonly qdrant?: Pick<VectorStore, 'collectionExists'>;
}

function checks(config: Config, needs: Needs): Promise<void>[] {
  const timeoutMs = config.connectTimeoutMs;
  return [
    ...(needs.s3 ? [reachS3(needs.s3.store, needs.s3.bucket, s3Label(config), timeoutMs)] : []),
    ...(needs.qdrant ? [reachQdrant(needs.qdrant, qdrantLabel(config), timeoutMs)] : []),
  ];
}

/** Checks S3 and Qdrant (for commands without Redis: estimate, search). */
export async function checkServices(config: Config, needs: Needs): Promise<void> {
  await Promise.all(checks(config, needs));
}

/** Opens the command's Redis connection and checks it and every other service it needs. */
export async function commandRedis(config: Config, needs: Needs = {}): Promise<RedisClient> {
  const label = redisLabel(config);
  const timeoutMs = config.connectTimeoutMs;
  let downSince: number | undefined;
  let lastCause = 'the connection closed';
  let checked = false;
  const connection = redisConnection(config, {
    retryStrategy: () => {
      const now = Date.now();
      downSince ??= now;
      // before the check, the check decides (and closes the connection); after it, a Redis
      // gone for longer than the bound ends the command
      if (checked && now - downSince >= timeoutMs) {
        exitWithError(unreachable(label, `lost for ${timeoutMs} ms (CONNECT_TIMEOUT_MS): ${lastCause}`));
      }
      return 200;
    },
  });
  // errors are the check's and the retry strategy's business: never printed per attempt
  connection.on('error', (err: unknown) => void (lastCause = causeOf(err)));
  connection.on('ready', () => void (downSince = undefined));
  try {
    await Promise.all([reachRedis(connection, label, timeoutMs), ...checks(config, needs)]);
  } catch (err) {
    connection.disconnect();
    throw err;
  }
  checked = true;
  return connection;
}
