/**
 * Structured JSON logs (pino) on stderr, pretty on a terminal. Secrets never reach a log
 * line: the API key and presigned URLs are never put in one, pino's `redact` censors
 * fields that might carry them, and every line as written passes through redact.ts (an
 * outside system's message logged as an error may hold a signed URL or a password).
 */
import { pino } from 'pino';
import type { Logger } from 'pino';
import { redact } from './redact.js';

export function createLogger(level: string, name = 'mm-ingest'): Logger {
  const pretty = process.stderr.isTTY && !process.env.CI;
  return pino(
    {
      name,
      level,
      redact: {
        paths: ['apiKey', '*.apiKey', 'authorization', '*.authorization', 'url', '*.url'],
        censor: '[redacted]',
      },
      hooks: { streamWrite: (line) => redact(line) },
    },
    pretty
      ? pino.transport({ target: 'pino-pretty', options: { destination: 2, colorize: true } })
      : pino.destination(2),
  );
}

export type { Logger };
