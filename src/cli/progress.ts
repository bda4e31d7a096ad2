/**
 * Following a run: a live progress bar on a terminal (cli-progress), plain periodic lines
 * otherwise (logs, CI), with objects, inputs, requests, rate, ETA and failures.
 */
import { SingleBar } from 'cli-progress';
import type { RunState } from '../runs.js';

export interface Progress {
  update(run: RunState): void;
  stop(): void;
}

interface Sample {
  readonly at: number;
  readonly done: number;
}

function figures(run: RunState, samples: Sample[]): { done: number; total: number; rate: number; eta: string } {
  const c = run.counters;
  const done = c.objectsIndexed + c.objectsSkipped + c.objectsFailed;
  const total = c.queuedObjects;
  const now = Date.now();
  samples.push({ at: now, done });
  while (samples.length > 2 && (samples[0]?.at ?? now) < now - 30_000) samples.shift();
  const first = samples[0]!;
  const rate = now > first.at ? ((done - first.done) * 1000) / (now - first.at) : 0;
  const left = total - done;
  const eta = run.scanStatus === 'scanning' || rate <= 0 ? '?' : left <= 0 ? '0s' : `${Math.ceil(left / rate)}s`;
  return { done, total, rate, eta };
}

/** One line of the run's progress (also what the plain output prints). */
export function progressLine(run: RunState, samples: Sample[] = []): string {
  const c = run.counters;
  const f = figures(run, samples);
  return (
    `run ${run.id}: ${run.scanStatus === 'scanning' ? (run.scanWaiting ? `scanning (paused: ${run.scanWaiting.waiting} jobs waiting, bound ${run.scanWaiting.bound}), ` : 'scanning, ') : ''}objects ${f.done}/${f.total} ` +
    `(${c.objectsIndexed} indexed, ${c.unchanged} unchanged, ${c.objectsSkipped} skipped, ${c.objectsFailed} failed), ` +
    `${c.inputs} inputs, ${c.requests} requests, ${f.rate.toFixed(1)} objects/s, ETA ${f.eta}`
  );
}

export function createProgress(write: (line: string) => void, tty: boolean, everyMs = 5000): Progress {
  const samples: Sample[] = [];
  if (!tty) {
    let lastLine = '';
    let lastAt = 0;
    return {
      update(run) {
        const line = progressLine(run, samples);
        // a line when something changed, at most every `everyMs` (plus the final one)
        const finished = run.finishedAt !== undefined;
        if (line !== lastLine && (Date.now() - lastAt >= everyMs || finished || lastAt === 0)) {
          write(line);
          lastLine = line;
          lastAt = Date.now();
        }
      },
      stop: () => undefined,
    };
  }
  const bar = new SingleBar({
    format:
      'objects {bar} {value}/{total} | {inputs} inputs, {requests} requests | {rate}/s | ETA {eta_text} | {failed} failed',
    hideCursor: true,
    clearOnComplete: false,
  });
  let started = false;
  return {
    update(run) {
      const c = run.counters;
      const f = figures(run, samples);
      const payload = {
        inputs: c.inputs,
        requests: c.requests,
        rate: f.rate.toFixed(1),
        eta_text: f.eta,
        failed: c.objectsFailed,
      };
      if (!started) {
        bar.start(Math.max(f.total, 1), f.done, payload);
        started = true;
      }
      bar.setTotal(Math.max(f.total, 1));
      bar.update(f.done, payload);
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}
