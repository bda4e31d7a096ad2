// In-process stand-in for the Qdrant 1.19 REST API, for tests on machines where no Qdrant can
// run. The implementation lives in ./qdrant/; server.ts lists the endpoints it serves.
export { startQdrantStandin } from './qdrant/server.js';
export type { QdrantStandin, QdrantStandinOptions } from './qdrant/server.js';
