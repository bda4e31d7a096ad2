/**
 * What the simulator saw, for tests and benchmarks to assert on (`GET /_sim/stats`).
 *
 * State: running counters, the requests in flight, and per model the arrival times of
 * the last minute (for `maxRequestsInAnyMinute`). `reset` zeroes everything but the
 * requests still in flight, which remain in flight (and so count for the new peak).
 */
import type { FaultKind } from './faults.js';
import type { LimitKind, Refusal } from './refusals.js';
import type { UsageCounts } from './usage.js';

export interface ModelStats {
  requests: number;
  accepted: number;
  inputs: number;
  textTokens: number;
  imageTokens: number;
  /** Every non-200 answer by code, injected faults included. */
  refusals: Record<string, number>;
  limitViolations: number;
  /** Most requests received for this model in any sliding 60 s window. */
  maxRequestsInAnyMinute: number;
}

export interface SimulatorStats {
  /** Requests received on the embedding path. */
  requests: number;
  /** Answered 200. */
  accepted: number;
  /** Elements embedded (in accepted requests), and the images and videos in them. */
  inputs: number;
  images: number;
  videos: number;
  textTokens: number;
  /** Image and video tokens. */
  imageTokens: number;
  /** URLs the simulator downloaded (once per URL per request). */
  downloads: number;
  /** Every non-200 answer by code, injected faults included. */
  refusals: Record<string, number>;
  faults: Record<FaultKind, number>;
  /** Refusals for breaking a documented limit: a well-planned client keeps this at 0. */
  limitViolations: number;
  limitViolationsByKind: Partial<Record<LimitKind, number>>;
  inFlight: number;
  peakConcurrency: number;
  models: Record<string, ModelStats>;
}

const MINUTE_MS = 60_000;

const noFaults = (): Record<FaultKind, number> => ({ error500: 0, error503: 0, burst429: 0, hang: 0, drop: 0 });

function emptyStats(inFlight: number): SimulatorStats {
  return {
    requests: 0,
    accepted: 0,
    inputs: 0,
    images: 0,
    videos: 0,
    textTokens: 0,
    imageTokens: 0,
    downloads: 0,
    refusals: {},
    faults: noFaults(),
    limitViolations: 0,
    limitViolationsByKind: {},
    inFlight,
    peakConcurrency: inFlight,
    models: {},
  };
}

export class StatsRecorder {
  private stats = emptyStats(0);
  /** Per model: arrival times, and the index of the oldest one inside the last minute. */
  private arrivals = new Map<string, { times: number[]; head: number }>();

  reset(): void {
    this.stats = emptyStats(this.stats.inFlight);
    this.arrivals.clear();
  }

  /** A request arrived on the embedding path; pair with `left` when it is answered or dropped. */
  entered(): void {
    const s = this.stats;
    s.requests++;
    s.inFlight++;
    s.peakConcurrency = Math.max(s.peakConcurrency, s.inFlight);
  }

  left(): void {
    this.stats.inFlight = Math.max(0, this.stats.inFlight - 1);
  }

  /** The request names a known model (counted once per request). */
  forModel(model: string, now: number): void {
    const m = this.model(model);
    m.requests++;
    let a = this.arrivals.get(model);
    if (!a) {
      a = { times: [], head: 0 };
      this.arrivals.set(model, a);
    }
    while (a.head < a.times.length && (a.times[a.head] ?? 0) <= now - MINUTE_MS) a.head++;
    if (a.head > 1024 && a.head * 2 > a.times.length) {
      a.times = a.times.slice(a.head);
      a.head = 0;
    }
    a.times.push(now);
    m.maxRequestsInAnyMinute = Math.max(m.maxRequestsInAnyMinute, a.times.length - a.head);
  }

  accepted(model: string, inputs: number, usage: UsageCounts): void {
    const s = this.stats;
    const m = this.model(model);
    s.accepted++;
    m.accepted++;
    s.inputs += inputs;
    m.inputs += inputs;
    s.images += usage.images;
    s.videos += usage.videos;
    s.textTokens += usage.textTokens;
    m.textTokens += usage.textTokens;
    s.imageTokens += usage.imageTokens;
    m.imageTokens += usage.imageTokens;
  }

  refused(refusal: Refusal, model?: string): void {
    const s = this.stats;
    s.refusals[refusal.code] = (s.refusals[refusal.code] ?? 0) + 1;
    const m = model === undefined ? undefined : this.model(model);
    if (m) m.refusals[refusal.code] = (m.refusals[refusal.code] ?? 0) + 1;
    if (refusal.limit) {
      s.limitViolations++;
      s.limitViolationsByKind[refusal.limit] = (s.limitViolationsByKind[refusal.limit] ?? 0) + 1;
      if (m) m.limitViolations++;
    }
  }

  fault(kind: FaultKind): void {
    this.stats.faults[kind]++;
  }

  downloaded(count: number): void {
    this.stats.downloads += count;
  }

  /** A deep copy: callers may keep or change it freely. */
  snapshot(): SimulatorStats {
    return structuredClone(this.stats);
  }

  private model(name: string): ModelStats {
    let m = this.stats.models[name];
    if (!m) {
      m = {
        requests: 0,
        accepted: 0,
        inputs: 0,
        textTokens: 0,
        imageTokens: 0,
        refusals: {},
        limitViolations: 0,
        maxRequestsInAnyMinute: 0,
      };
      this.stats.models[name] = m;
    }
    return m;
  }
}
