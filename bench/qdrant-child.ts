/**
 * The Qdrant stand-in in a process of its own for the benchmark (so its CPU is not
 * counted with, nor queued behind, the bench's own measuring loop). Prints
 * `qdrant-standin listening on URL` once it serves; SIGTERM/SIGINT close it.
 */
import { startQdrantStandin } from '../test/support/qdrant-standin.js';

const standin = await startQdrantStandin({ port: 0 });
process.stdout.write(`qdrant-standin listening on ${standin.url}\n`);
const stop = (): void => {
  standin.close().then(
    () => process.exit(0),
    () => process.exit(0),
  );
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
