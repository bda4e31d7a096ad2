// HTTP plumbing shaped like Qdrant's actix front end: the `{result, status, time}` envelope,
// the 32 MiB JSON body limit (`service.max_request_size_mb`), the JSON content-type
// requirement, and the wording of their errors.

import type { IncomingMessage } from 'node:http';

import { formatError, payloadError, queryParamError, type QdrantHttpError } from './errors.js';

export const MAX_REQUEST_BYTES = 32 * 1024 * 1024;

export interface Reply {
  status: number;
  contentType: string;
  body: string;
}

export function elapsedSeconds(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

export function okReply(result: unknown, started: bigint): Reply {
  return json(200, { result, status: 'ok', time: elapsedSeconds(started) });
}

export function errorReply(error: QdrantHttpError, started: bigint): Reply {
  const time = error.fromExtractor ? 0 : elapsedSeconds(started);
  return json(error.status, { status: { error: error.message }, time });
}

export function json(status: number, value: unknown): Reply {
  return { status, contentType: 'application/json', body: JSON.stringify(value) };
}

export function text(status: number, body: string): Reply {
  return { status, contentType: 'text/plain; charset=utf-8', body };
}

function isJsonContentType(header: string | undefined): boolean {
  if (header === undefined) return false;
  const mime = header.split(';')[0]?.trim().toLowerCase() ?? '';
  return mime === 'application/json' || mime.endsWith('+json');
}

/**
 * Reads and parses a JSON body. On refusal the rest of the body is drained, so the client
 * gets the answer instead of a reset connection.
 */
export async function readJsonBody(req: IncomingMessage, limit = MAX_REQUEST_BYTES): Promise<unknown> {
  if (!isJsonContentType(req.headers['content-type'])) {
    req.resume();
    throw payloadError('Content type error');
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    throw payloadError(`JSON payload (${declared} bytes) is larger than allowed (limit: ${limit} bytes).`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let overflow = false;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) overflow = true;
    if (!overflow) chunks.push(chunk);
  }
  if (overflow) throw payloadError(`JSON payload has exceeded limit (${limit} bytes).`);
  const raw = Buffer.concat(chunks).toString('utf8');
  if (raw.trim() === '') throw formatError('EOF while parsing a value at line 1 column 0');
  try {
    return JSON.parse(raw) as unknown;
  } catch (error) {
    throw formatError(error instanceof Error ? error.message : String(error));
  }
}

/** `?wait=` as serde reads a bool from a query string; Qdrant's default is false. */
export function parseWait(query: URLSearchParams): boolean {
  const value = query.get('wait');
  if (value === null) return false;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw queryParamError('provided string was not `true` or `false`');
}

/** `UpdateResult`: a write is applied at once in the stand-in, only the status word differs. */
export function updateResult(operationId: number, wait: boolean): { operation_id: number; status: string } {
  return { operation_id: operationId, status: wait ? 'completed' : 'acknowledged' };
}
