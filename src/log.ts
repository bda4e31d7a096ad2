/**
 * Structured JSON logs (pino) on stderr, pretty on a terminal. Secrets never reach a log
 * line: the API key and presigned URLs are never put in one, and `redact` is a second
 * line of defence for fields that might carry them.
 */
import { pino } from 'pino';
import type { Logger } from 'pino';

export function createLogger(level: string, name = 'mm-ingest'): Logger {
  const pretty = process.stderr.isTTY && !process.env.CI;
  return pino(
    {
      name,
      level,
      redact: { paths: ['apiKey', '*.apiKey', 'authorization', '*.authorization', 'url', '*.url'], censor: '[redacted]' },
    },
    pretty ? pino.transport({ target: 'pino-pretty', options: { destination: 2, colorize: true } }) : pino.destination(2),
  );
}

export type { Logger };
