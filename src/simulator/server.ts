/**
 * The simulator's HTTP server: the provider's embedding endpoint, plus `/_sim/*`
 * endpoints (no key needed) to read stats, reset and reconfigure it while it runs.
 *
 * State: the options in force (patched by `configure`), the stats, the rate windows,
 * the fault and jitter generators, and the timers of hung requests (cleared on close).
 *
 * An embedding request goes: read the body (drained even when refused, so the client
 * sees the answer) -> key -> Content-Type -> body size (413) -> JSON -> envelope and
 * model (404) -> injected fault -> content validation (downloads included) -> rate
 * limits with the request's own usage -> vectors -> latency -> 200. Latency is held
 * before successes and injected 500/503 answers only: refusals answer at once.
 * The key is compared, never logged or echoed. With `captureRequests` set, requests on
 * the API paths and their answers are kept in a log with the key redacted (capture.ts).
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate, setTimeout as sleep } from 'node:timers/promises';
import { EMBEDDING_PATH } from '../api.js';
import type { ApiErrorBody, ApiSuccessBody } from '../api.js';
import { ConfigError } from '../errors.js';
import { CONTRACT_MODEL_NAMES as MODEL_NAMES, contractModel as resolveModel, qwenTokenCount } from './contract.js';
import { parseEnvelope } from './contents.js';
import type { Envelope } from './contents.js';
import { FaultInjector } from './faults.js';
import { Latency } from './latency.js';
import { RequestLog } from './capture.js';
import type { CapturedRequest } from './capture.js';
import { applyPatch, rateLimitFor, resolveSimulatorOptions } from './options.js';
import type { RateLimit, SimulatorOptions, SimulatorOptionsInput, SimulatorPatch } from './options.js';
import { RateLimiter } from './ratelimit.js';
import {
  INTERNAL_ERROR,
  INVALID_API_KEY,
  MODEL_UNAVAILABLE,
  BURST_RATE,
  Refused,
  bodyTooLarge,
  invalidParameter,
} from './refusals.js';
import type { Refusal } from './refusals.js';
import { StatsRecorder } from './stats.js';
import type { SimulatorStats } from './stats.js';
import { usageBody, usageCounts } from './usage.js';
import { validateRequest } from './validate.js';
import type { ValidElement, ValidRequest } from './validate.js';
import { embedParts } from './vectors.js';
import type { VectorPart } from './vectors.js';

export interface Simulator {
  /** Base URL to give a client, e.g. http://127.0.0.1:40123 (no trailing slash). */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
  stats(): SimulatorStats;
  /** Zeroes the stats and the rate windows, and restarts the fault and jitter sequences. */
  reset(): void;
  /** Patches faults, latency or rate limits; throws a ConfigError naming a bad field. */
  configure(patch: SimulatorPatch): void;
  /** The options in force, without the key. */
  config(): SimulatorConfigView;
  /** The request log, oldest first (empty unless `captureRequests` is set); `reset` clears it. */
  requests(): CapturedRequest[];
}

export type SimulatorConfigView = Omit<SimulatorOptions, 'apiKey'> & {
  readonly rateLimitsInForce: Record<string, RateLimit>;
};

/** Small bodies only on the control endpoints. */
const CONTROL_BODY_MAX = 1_000_000;

interface Body {
  /** Undefined when the body was over the cap (it was drained, not kept). */
  readonly bytes: Buffer | undefined;
  readonly total: number;
}

function readBody(req: IncomingMessage, cap: number): Promise<Body> {
  return new Promise((resolve, reject) => {
    let chunks: Buffer[] = [];
    let total = 0;
    req.on('data', (chunk: Buffer) => {
      total += chunk.length;
      if (total <= cap) chunks.push(chunk);
      else chunks = [];
    });
    req.on('end', () => resolve({ bytes: total <= cap ? Buffer.concat(chunks, total) : undefined, total }));
    req.on('error', reject);
    req.on('close', () => {
      if (!req.complete) reject(new Error('client went away before the body ended'));
    });
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  sendJsonText(res, status, JSON.stringify(body));
}

function sendJsonText(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function elementParts(e: ValidElement): VectorPart[] {
  const parts: VectorPart[] = [];
  if (e.text !== undefined) parts.push({ kind: 'text', text: e.text });
  for (const img of e.images) parts.push({ kind: 'image', bytes: img.bytes });
  if (e.video) parts.push({ kind: 'video', bytes: e.video.bytes });
  return parts;
}

export async function startSimulator(input: SimulatorOptionsInput): Promise<Simulator> {
  let options = resolveSimulatorOptions(input);
  // A bad override (a default dimension not in the list) fails here, not on a request.
  for (const name of MODEL_NAMES) resolveModel(name, options.modelOverrides);
  const keyDigest = createHash('sha256').update(`Bearer ${options.apiKey}`).digest();
  // Load the tokenizer now (about half a second) rather than inside the first request.
  qwenTokenCount('warm up');

  const limitsOf =
    (o: SimulatorOptions) =>
    (model: string): RateLimit =>
      rateLimitFor(o.rateLimits, resolveModel(model, o.modelOverrides));
  const stats = new StatsRecorder();
  const limiter = new RateLimiter(limitsOf(options));
  const faults = new FaultInjector(options.faults);
  const latency = new Latency(options.latency, options.faults.seed);
  const hung = new Set<NodeJS.Timeout>();
  const log = new RequestLog(options.captureRequests, options.apiKey);
  /** An answer on the API paths: sent, and noted in the request log. */
  const answer = (res: ServerResponse, status: number, body: unknown): void => {
    if (res.headersSent || res.destroyed) return;
    sendJson(res, status, body);
    log.answered(res, status, body);
  };

  const authorized = (header: string | undefined): boolean =>
    header !== undefined && timingSafeEqual(createHash('sha256').update(header).digest(), keyDigest);

  const configure = (patch: unknown): void => {
    options = applyPatch(options, patch);
    limiter.setLimits(limitsOf(options));
    faults.configure(options.faults);
    latency.configure(options.latency, options.faults.seed);
  };
  const reset = (): void => {
    stats.reset();
    log.reset();
    limiter.reset();
    faults.reset();
    latency.reset();
  };
  const config = (): SimulatorConfigView => {
    const { apiKey: _key, ...rest } = options;
    const inForce = Object.fromEntries(MODEL_NAMES.map((m) => [m, limitsOf(options)(m)]));
    return { ...rest, rateLimitsInForce: inForce };
  };

  async function embedding(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // the provider counts a request against its rate limits when it arrives, not once its
    // body is read and its contents validated (downloads included)
    const arrivedAt = performance.now();
    stats.entered();
    res.on('close', () => stats.left());
    const body = await readBody(req, options.maxBodyBytes);
    log.record(req, res, body.bytes, body.total);
    const requestId = randomUUID();
    const refuse = (r: Refusal, model?: string): void => {
      stats.refused(r, model);
      answer(res, r.status, { code: r.code, message: r.message, request_id: requestId } satisfies ApiErrorBody);
    };

    if (!authorized(req.headers.authorization)) return refuse(INVALID_API_KEY);
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (contentType !== 'application/json') return refuse(invalidParameter('Content-Type must be application/json.'));
    if (!body.bytes) return refuse(bodyTooLarge(body.total, options.maxBodyBytes));
    let json: unknown;
    try {
      json = JSON.parse(body.bytes.toString('utf8'));
    } catch {
      return refuse(invalidParameter('The request body is not valid JSON.'));
    }
    let envelope: Envelope;
    try {
      envelope = parseEnvelope(json, options.modelOverrides);
    } catch (err) {
      if (err instanceof Refused) return refuse(err.refusal);
      throw err;
    }
    const model = envelope.spec.name;
    stats.forModel(model, performance.now());

    const fault = faults.draw();
    if (fault) {
      stats.fault(fault);
      switch (fault) {
        case 'error500':
        case 'error503':
          await sleep(latency.delayMs(envelope.contents.length));
          return refuse(fault === 'error500' ? INTERNAL_ERROR : MODEL_UNAVAILABLE, model);
        case 'burst429':
          return refuse(BURST_RATE, model);
        case 'hang': {
          const timer = setTimeout(() => req.socket.destroy(), options.faults.hangMs);
          hung.add(timer);
          // A client that gives up first frees the timer now rather than after hangMs.
          res.once('close', () => {
            clearTimeout(timer);
            hung.delete(timer);
          });
          return;
        }
        case 'drop':
          req.socket.destroy();
          return;
      }
    }

    let valid: ValidRequest;
    try {
      valid = await validateRequest(envelope, {
        maxDataUriBytes: options.maxDataUriBytes,
        downloadTimeoutMs: options.downloadTimeoutMs,
        allowPrivateUrls: options.allowPrivateUrls,
        onDownloads: (n) => stats.downloaded(n),
      });
    } catch (err) {
      if (err instanceof Refused) return refuse(err.refusal, model);
      throw err;
    }
    const counts = usageCounts(valid, options.videoTokenRule);
    const throttled = limiter.admit(model, counts.textTokens + counts.imageTokens, arrivedAt);
    if (throttled) return refuse(throttled, model);

    const spec = valid.spec;
    // Each vector is made and serialized in a turn of the event loop of its own (under a
    // ms at 2,560 dimensions), so a request arriving meanwhile is stamped when it comes, as
    // the provider's front door would stamp it: a whole answer of 20 vectors at once held
    // the loop about 17 ms, and arrivals behind it were counted that much late.
    const embeddings: string[] = [];
    for (const e of valid.elements) {
      const entry: ApiSuccessBody['output']['embeddings'][number] = {
        index: e.index,
        embedding: embedParts(spec.name, valid.dimension, elementParts(e)),
        type: e.type,
      };
      embeddings.push(JSON.stringify(entry));
      await setImmediate();
    }
    await sleep(latency.delayMs(valid.elements.length));
    stats.accepted(spec.name, valid.elements.length, counts);
    if (res.headersSent || res.destroyed) return;
    // the body as JSON.stringify would give it ({output: {embeddings}, usage, request_id})
    const usage: ApiSuccessBody['usage'] = usageBody(counts);
    sendJsonText(
      res,
      200,
      `{"output":{"embeddings":[${embeddings.join(',')}]},"usage":${JSON.stringify(usage)},"request_id":${JSON.stringify(requestId)}}`,
    );
    log.answered(res, 200, { request_id: requestId });
  }

  async function control(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (req.method === 'GET' && path === '/_sim/stats') return sendJson(res, 200, stats.snapshot());
    if (req.method === 'GET' && path === '/_sim/config') return sendJson(res, 200, config());
    if (req.method === 'GET' && path === '/_sim/requests')
      return sendJson(res, 200, { capacity: log.capacity, requests: log.list() });
    if (req.method === 'POST' && path === '/_sim/reset') {
      await readBody(req, CONTROL_BODY_MAX);
      reset();
      return sendJson(res, 200, stats.snapshot());
    }
    if (req.method === 'POST' && path === '/_sim/config') {
      const body = await readBody(req, CONTROL_BODY_MAX);
      try {
        configure(JSON.parse(body.bytes?.toString('utf8') ?? 'null'));
      } catch (err) {
        const message =
          err instanceof ConfigError || err instanceof SyntaxError ? err.message : 'invalid configuration';
        return sendJson(res, 400, { code: 'InvalidParameter', message, request_id: randomUUID() });
      }
      return sendJson(res, 200, config());
    }
    sendJson(res, 404, {
      code: 'NotFound',
      message: `No ${req.method ?? ''} ${path} on the simulator.`,
      request_id: randomUUID(),
    });
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://sim').pathname;
    if (path.startsWith('/_sim/')) return control(req, res, path);
    if (path === EMBEDDING_PATH && req.method === 'POST') return embedding(req, res);
    // Anything else is logged too: a client on the wrong path or method shows up in the log.
    const body = await readBody(req, CONTROL_BODY_MAX).catch(() => undefined);
    if (body) log.record(req, res, body.bytes, body.total);
    if (path === EMBEDDING_PATH)
      return answer(res, 405, {
        code: 'MethodNotAllowed',
        message: `Use POST for ${EMBEDDING_PATH}.`,
        request_id: randomUUID(),
      });
    answer(res, 404, {
      code: 'NotFound',
      message: `No ${req.method ?? ''} ${path} on the simulator.`,
      request_id: randomUUID(),
    });
  }

  const server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      // A client that went away needs no answer; anything else is a simulator bug.
      if (req.complete && !res.headersSent && !res.destroyed) {
        process.stderr.write(`simulator: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        answer(res, 500, { code: INTERNAL_ERROR.code, message: INTERNAL_ERROR.message, request_id: randomUUID() });
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;

  return {
    url: `http://${host}:${port}`,
    port,
    stats: () => stats.snapshot(),
    reset,
    configure: (patch) => configure(patch),
    config,
    requests: () => log.list(),
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const timer of hung) clearTimeout(timer);
        hung.clear();
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
