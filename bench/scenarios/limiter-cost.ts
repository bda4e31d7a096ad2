/**
 * What the shared limiter costs Redis: round trips and Redis CPU per 1,000 requests.
 *
 * Against the bench's own redis-server (nothing else uses it meanwhile), waiters ask the
 * limiter for a request, hold it for the simulated latency and settle it, until
 * `requests` have been admitted, at a rate the limiter binds (more waiters than it lets
 * through), so that a limiter that polls shows its polling. Round trips are the script calls Redis
 * counted (INFO commandstats: EVAL and EVALSHA; the limiter sends nothing else); CPU is
 * Redis's own (INFO cpu, user + system), both as differences over the probe.
 */
import type { Redis } from 'ioredis';
import type { RequestGate } from '../../src/rate-limit.js';

export interface LimiterCost {
  limiter: string;
  requests: number;
  waiters: number;
  rpm: number;
  seconds: number;
  roundTripsPer1000: number;
  redisCpuMsPer1000: number;
  admittedPerS: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function counters(redis: Redis): Promise<{ calls: number; cpu: number }> {
  const stats = await redis.info('commandstats');
  // round trips: the calls the client made (a script's own commands are counted too, under their names)
  let calls = 0;
  for (const m of stats.matchAll(/^cmdstat_(\S+?):calls=(\d+)/gm))
    if (['eval', 'evalsha', 'eval_ro', 'evalsha_ro'].includes(m[1] ?? '')) calls += Number(m[2]);
  const cpu = await redis.info('cpu');
  const user = Number(/used_cpu_user:([\d.]+)/.exec(cpu)?.[1] ?? 0);
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(cpu)?.[1] ?? 0);
  return { calls, cpu: user + sys };
}

export async function limiterCost(
  redis: Redis,
  label: string,
  gate: RequestGate,
  waiters: number,
  holdMs: number,
  requests = 1000,
  rpm = 6000,
): Promise<LimiterCost> {
  const model = `probe-${Date.now()}`;
  let admitted = 0;
  const before = await counters(redis);
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: waiters }, async () => {
      while (admitted < requests) {
        const { ticket } = await gate.acquire(model, { rpm, tpm: 10_000_000 }, 300);
        admitted += 1;
        await sleep(holdMs);
        if (ticket !== undefined) await gate.settle?.(model, ticket, 280);
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  await (gate as { flush?: () => Promise<void> }).flush?.();
  const after = await counters(redis);
  const per1000 = 1000 / admitted;
  return {
    limiter: label,
    requests: admitted,
    waiters,
    rpm,
    seconds,
    roundTripsPer1000: (after.calls - before.calls) * per1000,
    redisCpuMsPer1000: (after.cpu - before.cpu) * 1000 * per1000,
    admittedPerS: admitted / seconds,
  };
}
