/**
 * Where events come from. Each source hands a delivery to the listener and acknowledges it
 * only once the listener has recorded its keys (`deliver` resolved):
 * - SQS: long polling (`ReceiveMessage`, 20 s); a message is deleted after its keys are
 *   recorded; one that could not be recorded is left alone and comes back after its
 *   visibility timeout;
 * - MinIO's webhook target: POSTs with `Authorization: Bearer TOKEN`, answered 200 once
 *   recorded, 503 when they could not be (MinIO sends them again from its queue_dir);
 * - MinIO's Redis target (`access` format, a list): each entry is moved atomically to a
 *   processing list (`BLMOVE`), recorded, then removed from it; entries a killed listener
 *   left in the processing list are recorded again when a listener starts.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { Message } from '@aws-sdk/client-sqs';
import type { RedisClient } from '../connections.js';
import type { Logger } from '../log.js';
import { redact } from '../redact.js';
import { parseNotificationText } from './events.js';
import type { Listener } from './listener.js';

/** An error's message without the secrets it may hold. */
const errorText = (err: unknown): string => redact(err instanceof Error ? err.message : String(err));

export interface RunningSource {
  readonly name: string;
  /** Stops taking deliveries; resolves when the one in hand is acknowledged or left. */
  stop(): Promise<void>;
}

/** Bodies larger than this are refused (413): MinIO sends one record per POST, a few KiB. */
const MAX_WEBHOOK_BODY = 1024 * 1024;

export interface WebhookOptions {
  readonly host: string;
  readonly port: number;
  readonly token: string;
  readonly path?: string;
}

export async function startWebhookSource(
  listener: Listener,
  opts: WebhookOptions,
  log: Logger,
): Promise<RunningSource & { readonly port: number; readonly host: string }> {
  const expected = createHash('sha256').update(`Bearer ${opts.token}`).digest();
  const authorized = (req: IncomingMessage): boolean => {
    const header = req.headers.authorization;
    return header !== undefined && timingSafeEqual(createHash('sha256').update(header).digest(), expected);
  };
  const answer = (res: ServerResponse, status: number, text: string): void =>
    void res.writeHead(status, { 'content-type': 'text/plain' }).end(`${text}\n`);
  const server: Server = createServer((req, res) => {
    if (req.method !== 'POST') return answer(res, 405, 'POST bucket event notifications here');
    if (!authorized(req)) {
      req.resume();
      log.warn({ remote: req.socket.remoteAddress }, 'webhook request without the right bearer token refused (401)');
      return answer(
        res,
        401,
        'a bearer token is required (Authorization: Bearer TOKEN, MinIO: MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID>)',
      );
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_WEBHOOK_BODY && !refused) {
        refused = true;
        answer(res, 413, `a notification body is at most ${MAX_WEBHOOK_BODY} bytes`);
        req.destroy();
      } else if (!refused) chunks.push(c);
    });
    req.on('end', () => {
      if (refused) return;
      const parsed = parseNotificationText(Buffer.concat(chunks).toString('utf8'));
      listener.deliver('webhook', parsed).then(
        () => answer(res, 200, 'ok'),
        (err: unknown) => {
          log.warn({ err: errorText(err) }, 'webhook delivery not recorded (503: the sender retries)');
          answer(res, 503, 'not recorded, send it again');
        },
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    name: 'webhook',
    port: address.port,
    host: opts.host,
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

export interface RedisListOptions {
  /** The list MinIO pushes to (MINIO_NOTIFY_REDIS_KEY_<ID>, format `access`). */
  readonly list: string;
  /** Where entries wait while they are recorded. @defaultValue `<list>:processing` */
  readonly processing?: string;
}

/** `connection`: a connection of its own (BLMOVE blocks it). */
export function startRedisListSource(
  listener: Listener,
  connection: RedisClient,
  opts: RedisListOptions,
  log: Logger,
): RunningSource {
  const processing = opts.processing ?? `${opts.list}:processing`;
  let stopped = false;
  const handle = async (entry: string): Promise<void> => {
    for (;;) {
      try {
        await listener.deliver('redis', parseNotificationText(entry));
        await connection.lrem(processing, 1, entry);
        return;
      } catch (err) {
        if (stopped) return; // left in the processing list: recorded again at the next start
        log.warn({ err: errorText(err) }, 'Redis list entry not recorded, retrying');
        await sleep(1000);
      }
    }
  };
  const loop = async (): Promise<void> => {
    // what a listener that died left in the processing list
    for (const entry of await connection.lrange(processing, 0, -1)) {
      if (stopped) return;
      await handle(entry);
    }
    while (!stopped) {
      let entry: string | null;
      try {
        entry = (await connection.blmove(opts.list, processing, 'LEFT', 'RIGHT', 1)) as string | null;
      } catch (err) {
        if (stopped) return;
        const message = (err as Error).message;
        if (/WRONGTYPE/.test(message))
          log.error(
            { list: opts.list },
            `${opts.list} is not a list: MinIO's Redis target must use MINIO_NOTIFY_REDIS_FORMAT_<ID>=access`,
          );
        else log.warn({ err: errorText(err) }, 'reading the Redis list failed, retrying');
        await sleep(1000);
        continue;
      }
      if (entry !== null) await handle(entry);
    }
  };
  const running = loop();
  return {
    name: 'redis',
    async stop() {
      stopped = true;
      await running;
    },
  };
}

export interface SqsOptions {
  readonly queueUrl: string;
  /** @defaultValue 20 (the longest long poll) */
  readonly waitSeconds?: number;
  /** The region of the queue; by default the one in an AWS queue URL, else AWS_REGION. */
  readonly region: string;
}

/** The region named by an AWS queue URL (`https://sqs.eu-west-1.amazonaws.com/123/q`). */
export function regionOfQueueUrl(url: string): string | undefined {
  try {
    return /^sqs[.-]([a-z0-9-]+)\.amazonaws\.com(\.cn)?$/.exec(new URL(url).hostname)?.[1];
  } catch {
    return undefined;
  }
}

export function startSqsSource(listener: Listener, opts: SqsOptions, log: Logger): RunningSource {
  // the queue URL is the endpoint (the SDK's default, useQueueUrlAsEndpoint): AWS, ElasticMQ, LocalStack alike
  const client = new SQSClient({ region: regionOfQueueUrl(opts.queueUrl) ?? opts.region });
  const abort = new AbortController();
  let stopped = false;
  let lastError: string | undefined;
  const loop = async (): Promise<void> => {
    while (!stopped) {
      let messages: Message[];
      try {
        const out = await client.send(
          new ReceiveMessageCommand({
            QueueUrl: opts.queueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: opts.waitSeconds ?? 20,
            MessageSystemAttributeNames: ['ApproximateReceiveCount'],
          }),
          { abortSignal: abort.signal },
        );
        messages = out.Messages ?? [];
        if (lastError !== undefined) log.info('SQS answers again');
        lastError = undefined;
      } catch (err) {
        if (stopped) return;
        const message = errorText(err);
        if (message !== lastError)
          log.warn({ err: message, queue: opts.queueUrl }, 'receiving from SQS failed, retrying');
        lastError = message;
        await sleep(2000);
        continue;
      }
      const done: { Id: string; ReceiptHandle: string }[] = [];
      for (const [i, m] of messages.entries()) {
        try {
          await listener.deliver('sqs', parseNotificationText(m.Body ?? ''));
          if (m.ReceiptHandle) done.push({ Id: String(i), ReceiptHandle: m.ReceiptHandle });
        } catch (err) {
          // not deleted: SQS delivers it again after its visibility timeout
          log.warn({ err: errorText(err), messageId: m.MessageId }, 'SQS message not recorded, left for redelivery');
        }
      }
      if (done.length === 0) continue;
      try {
        const out = await client.send(new DeleteMessageBatchCommand({ QueueUrl: opts.queueUrl, Entries: done }));
        for (const f of out.Failed ?? [])
          log.warn(
            { code: f.Code, reason: f.Message },
            'SQS message not deleted (it will be delivered again; its keys cost nothing twice)',
          );
      } catch (err) {
        log.warn(
          { err: errorText(err) },
          'deleting SQS messages failed (they will be delivered again; their keys cost nothing twice)',
        );
      }
    }
  };
  const running = loop();
  return {
    name: 'sqs',
    async stop() {
      stopped = true;
      abort.abort();
      await running;
      client.destroy();
    },
  };
}
