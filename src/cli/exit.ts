/** How a command that failed ends: one line on stderr and its exit code, at once. */
import { ConfigError, ServiceUnreachableError } from '../errors.js';

/** The line and exit code of an error: 2 for configuration errors and unreachable services, 1 otherwise. */
export function describeFailure(err: unknown): { line: string; code: number } {
  if (err instanceof ConfigError) return { line: `mm-ingest: configuration error: ${err.message}`, code: 2 };
  if (err instanceof ServiceUnreachableError) return { line: `mm-ingest: ${err.message}`, code: 2 };
  return { line: `mm-ingest: ${err instanceof Error ? err.message : String(err)}`, code: 1 };
}

/**
 * Prints the error's line and exits now: a failed command may hold connections (a Redis
 * client reconnecting, an SDK retrying, a socket to a silent server) that would otherwise
 * keep the process alive after its one line.
 */
export function exitWithError(err: unknown): never {
  const { line, code } = describeFailure(err);
  process.stderr.write(`${line}\n`);
  process.exit(code);
}
