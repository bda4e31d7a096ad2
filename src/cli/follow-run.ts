/** `--wait` and `status --wait`: following a run to its end, and how it ended (the exit code). */
import { createProgress } from './progress.js';
import { printable } from './terminal.js';
import { isFinished } from '../runs.js';
import type { RunState, RunStore } from '../runs.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** How long a follower waits for another process to finish a finished run's end (a rebuild's switch). */
const FINISH_WAIT_MS = 120_000;

/**
 * Follows a run to its end, printing a line when it changes. Stops early, with the
 * reason, if the queue is paused by a fatal error (nothing would move until `resume`), or
 * if the run is a retry-failed's that was interrupted (nothing would queue the rest).
 */
export async function followRun(
  runs: RunStore,
  runId: string,
  paused: () => Promise<string | undefined>,
  finish: () => Promise<unknown>,
  pollMs = 1000,
): Promise<{ run: RunState; paused?: string; interrupted?: string }> {
  const progress = createProgress((line) => process.stdout.write(`${line}\n`), process.stdout.isTTY === true);
  let finishing: number | undefined;
  try {
    for (;;) {
      const run = await runs.get(runId);
      if (!run) throw new Error(`run ${runId} does not exist`);
      if (isFinished(run)) {
        // the run's end (a rebuild's switch) is done by whoever claims it: this process, or
        // a worker still at it; its outcome is known once the run is marked finished
        if (finishing === undefined) {
          finishing = Date.now();
          await finish();
        }
        if (run.finishedAt || Date.now() - finishing > FINISH_WAIT_MS) {
          progress.update(run);
          return { run };
        }
        await sleep(Math.min(pollMs, 200));
        continue;
      }
      progress.update(run);
      const reason = await paused();
      if (reason) return { run, paused: reason };
      const stopped = await interruptedRetry(runs, run);
      if (stopped) return { run, interrupted: stopped };
      await sleep(pollMs);
    }
  } finally {
    progress.stop();
  }
}

/**
 * Why a run of retry-failed still scanning will not go on: no process holds it (the
 * retry-failed that queued it was killed). Undefined for any other run.
 */
export async function interruptedRetry(runs: RunStore, run: RunState): Promise<string | undefined> {
  if (run.retryOf === undefined || run.scanStatus !== 'scanning' || (await runs.scanHeld(run.id))) return undefined;
  return `the retry-failed of run ${run.retryOf} that queued this run stopped before it ended; mm-ingest retry-failed --run ${run.retryOf} finishes it`;
}

/** Prints how a followed run ended and sets the exit code: 0 done, 1 failures, 3 paused. */
export function reportEnd(runId: string, end: { run: RunState; paused?: string; interrupted?: string }): void {
  if (end.interrupted) {
    process.stdout.write(`run ${runId}: interrupted: ${printable(end.interrupted)}\n`);
    process.exitCode = 1;
    return;
  }
  if (end.paused) {
    process.stdout.write(
      `run ${runId}: stopped, the queue is paused: ${printable(end.paused)} (fix it, then: mm-ingest resume)\n`,
    );
    process.exitCode = 3;
    return;
  }
  const failures = end.run.counters.objectsFailed + end.run.counters.jobsFailed;
  const rebuild = end.run.notes.rebuild;
  if (end.run.scanStatus === 'failed') {
    process.stdout.write(
      `run ${runId}: its scan failed: ${printable(end.run.scanError ?? 'no reason recorded')} (continue it with: mm-ingest index --run-id ${runId} ...)\n`,
    );
    process.exitCode = 1;
  } else if (failures > 0) {
    process.stdout.write(
      `run ${runId}: finished with ${end.run.counters.objectsFailed} failed objects (mm-ingest failures --run ${runId} lists them)\n`,
    );
    process.exitCode = 1;
  } else if (rebuild?.startsWith('not switched')) {
    process.stdout.write(`run ${runId}: rebuild ${rebuild}\n`);
    process.exitCode = 1;
  } else {
    process.stdout.write(`run ${runId}: finished\n`);
  }
}
