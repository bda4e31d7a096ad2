// Gives a test a Qdrant to talk to: the real server named by QDRANT_URL (docker compose
// provides one), otherwise a fresh in-process stand-in. Tests must pass against both.

import { QdrantClient } from '@qdrant/js-client-rest';

import { startQdrantStandin } from './qdrant-standin.js';

export interface QdrantForTest {
  url: string;
  apiKey?: string;
  close(): Promise<void>;
  /** True when talking to a real Qdrant. */
  real: boolean;
}

export async function qdrantForTest(): Promise<QdrantForTest> {
  const url = process.env.QDRANT_URL;
  if (url !== undefined && url !== '') {
    const apiKey = process.env.QDRANT_API_KEY;
    return { url, ...(apiKey ? { apiKey } : {}), real: true, close: async () => {} };
  }
  const standin = await startQdrantStandin({ port: 0 });
  return { url: standin.url, real: false, close: () => standin.close() };
}

/** A client of the test's Qdrant, sending its API key when it has one. */
export function clientOf(qdrant: QdrantForTest): QdrantClient {
  return new QdrantClient({
    url: qdrant.url,
    ...(qdrant.apiKey !== undefined ? { apiKey: qdrant.apiKey } : {}),
    checkCompatibility: false,
  });
}
