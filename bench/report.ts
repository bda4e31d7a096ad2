/**
 * The benchmark's results: `bench/results.json` (everything measured, and the settings),
 * `bench/results.md` (the same as tables), and the summary table printed at the end.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LimiterProbe } from './scenarios/limiter.js';
import { listenMarkdown } from './scenarios/listen.js';
import type { ListenResult } from './scenarios/listen.js';
import type { MixedLayoutResult } from './scenarios/mixed.js';
import type { PeerResult } from './scenarios/peers.js';
import type { ScaleResult } from './scenarios/scale.js';
import type { TokenResult } from './scenarios/tokens.js';
import { pacingMarkdown } from './scenarios/pacing-suite.js';
import type { PacingResults } from './scenarios/pacing-suite.js';
import type { Settings } from './settings.js';
import { ROOT } from './lib/procs.js';

export interface Results {
  startedAt: string;
  wallS: number;
  phasesS: Record<string, number>;
  machine: {
    cpu: string;
    cores: number;
    memoryGB: number;
    os: string;
    busyShare: number;
    benchCpuS: number;
    otherCpuS: number;
  };
  versions: Record<string, string>;
  settings: Settings & {
    qdrant: string;
    requestModelLimits: { rpm: number; tpm: number; documentedRpm: number; documentedTpm: number };
  };
  limiter: LimiterProbe[];
  scale: ScaleResult[];
  tokens: TokenResult;
  mixed: MixedLayoutResult[];
  peers: PeerResult[];
  /** Scenario 8 (absent from results written before it existed). */
  pacing?: PacingResults;
  listen?: ListenResult;
}

const f = (x: number, d = 1): string =>
  Number.isFinite(x) ? x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d }) : String(x);
const pct = (x: number): string => `${f(x * 100, 1)}%`;
const n429 = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);
const ok = (pass: boolean): string => (pass ? 'met' : '**missed**');

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/** The headline rows: each scenario's measurement beside its ceiling and its target. */
export function summaryRows(r: Results): string[][] {
  const s = r.settings;
  const big = r.scale[r.scale.length - 1]!;
  const rpm = s.requestModelLimits.rpm;
  const ceiling1 = (rpm / 60) * 20;
  const s1 = big.drain.steady.inputsPerS / ceiling1;
  const rss = (pick: (x: ScaleResult) => number): number =>
    Math.max(...r.scale.map(pick)) / Math.min(...r.scale.map(pick)) - 1;
  const lc = r.peers.find((p) => p.name === 'langchain');
  const seq = r.peers.find((p) => p.name === 'sequential');
  const ours = r.peers[0]!;
  const ours429 =
    r.scale.reduce((a, x) => a + n429(x.throttled429), 0) +
    n429(r.tokens.throttled429) +
    r.mixed.reduce((a, x) => a + n429(x.throttled429), 0) +
    n429(ours.throttled429);
  const retries = r.scale.reduce((a, x) => a + x.runCounters.retries, 0) + r.tokens.runCounters.retries;
  // the admission log was the old limiter's sorted set; the reservation limiter keeps none
  const logged = [...r.scale.map((x) => x.admissions), r.tokens.admissions].some((a) => a.total > 0);
  const paced = [
    ...r.scale.map((x) => x.admissions),
    r.tokens.admissions,
    ...(ours.admissions ? [ours.admissions] : []),
  ].every((a) => a.maxIn1s <= a.rps);
  return [
    [
      '1 request-bound',
      'indexed inputs/s (steady)',
      `${f(ceiling1)} = (${rpm} RPM / 60) x 20`,
      f(big.drain.steady.inputsPerS),
      `${pct(s1)}; target >= 95%: ${ok(s1 >= 0.95)}`,
    ],
    [
      '1 request-bound',
      'inputs per request',
      '20',
      f(big.drain.inputsPerRequest, 2),
      `target >= 19.5: ${ok(big.drain.inputsPerRequest >= 19.5)}`,
    ],
    [
      '2 token-bound',
      'tokens/s (mean of 60 s windows)',
      `${f(r.tokens.ceilingTokensPerS)} = ${r.tokens.tpm.toLocaleString('en-US')} TPM / 60`,
      f(r.tokens.tokensPerS),
      `${pct(r.tokens.ratio)}; target >= 90%: ${ok(r.tokens.ratio >= 0.9)}`,
    ],
    ...r.mixed.map((m) => [
      `3 mixed (${m.layout})`,
      'inputs per request',
      `${f(m.ceilingInputsPerRequest, 2)} (${m.images} images, ${m.texts} texts, 1 image a request)`,
      f(m.inputsPerRequest, 2),
      pct(m.ratio),
    ]),
    [
      '4 scan + enqueue',
      `objects/s at ${big.objects.toLocaleString('en-US')}`,
      `${f(big.bareListing.objectsPerS, 0)} (bare ListObjectsV2)`,
      f(big.index.objectsPerS, 0),
      `${pct(big.index.ratioToBare)}; target >= 80%: ${ok(big.index.ratioToBare >= 0.8)}`,
    ],
    ...(big.index.fullMode
      ? [
          [
            '4 scan + enqueue',
            '  the same with --mode full',
            '',
            f(big.index.fullMode.objectsPerS, 0),
            pct(big.index.fullMode.ratioToBare),
          ],
        ]
      : []),
    [
      '5 scale',
      `producer peak RSS, ${r.scale.map((x) => x.objects).join('/')}`,
      'flat within 20%',
      r.scale.map((x) => `${f(x.producer.peakRssMB, 0)} MB`).join(' / '),
      `+${pct(rss((x) => x.producer.peakRssMB))}: ${ok(rss((x) => x.producer.peakRssMB) <= 0.2)}`,
    ],
    [
      '5 scale',
      'worker peak RSS',
      'flat within 20%',
      r.scale.map((x) => `${f(x.workers.peakRssMB, 0)} MB`).join(' / '),
      `+${pct(rss((x) => x.workers.peakRssMB))}: ${ok(rss((x) => x.workers.peakRssMB) <= 0.2)}`,
    ],
    [
      '5 scale',
      'Redis per queued job',
      '< 2,048 B',
      r.scale.map((x) => `${f(x.redis.bytesPerJob, 0)} B`).join(' / '),
      `${ok(big.redis.bytesPerJob < 2048)} (${f(big.redis.bytesPerObject, 0)} B an object)`,
    ],
    [
      '5 scale',
      'wall time per object',
      `${f(1000 / ceiling1, 1)} ms at the ceiling`,
      r.scale.map((x) => `${f(x.wallMsPerObject, 1)} ms`).join(' / '),
      '',
    ],
    [
      '6 peers',
      'objects/s, same bucket and quota',
      `ours ${f(ours.objectsPerS)}`,
      `LangChain.js ${f(lc?.objectsPerS ?? 0)}; sequential ${f(seq?.objectsPerS ?? 0)}`,
      `ours x${f(lc?.oursRatio ?? 0, 2)} and x${f(seq?.oursRatio ?? 0, 1)}`,
    ],
    ...(r.listen && !r.listen.skipped
      ? [
          [
            '7 listen',
            `event-to-point p50 / p95, ${r.listen.objects.toLocaleString('en-US')}-PUT burst`,
            `drain ${f(r.listen.ceilingDrainS, 1)} s at the ceiling`,
            `${f(r.listen.latencyMs.p50 / 1000, 2)} s / ${f(r.listen.latencyMs.p95 / 1000, 2)} s`,
            `requests/event ${r.listen.bursts.map((b) => f(b.requestsPerEvent, 3)).join(', then unchanged ')}; lag after drain ${f(r.listen.lagAfterDrainS, 1)} s`,
          ],
        ]
      : []),
    [
      'all',
      '429s received by our pipeline',
      '0',
      String(ours429),
      `${ok(ours429 === 0)}; retries ${retries}; our admissions over RPM/60 in any 1 s: ${logged ? (paced ? 'never' : '**yes**') : 'not logged (the limiter reserves slots, it keeps no log)'}`,
    ],
    [
      'all',
      'CPU s per 1,000 objects (producer + workers)',
      '',
      r.scale.map((x) => f(x.cpuSPer1000Objects, 2)).join(' / '),
      `${f(big.cpuSPer1000ObjectsAfterStartup, 2)} without worker start-up at ${big.objects.toLocaleString('en-US')}`,
    ],
  ];
}

export const SUMMARY_HEADER = ['scenario', 'measure', 'ceiling / target', 'measured', 'ratio, verdict'] as const;

export function summaryText(r: Results): string {
  const rows = summaryRows(r);
  const widths = SUMMARY_HEADER.map((h, i) =>
    Math.max(h.length, ...rows.map((row) => (row[i] ?? '').replace(/\*\*/g, '').length)),
  );
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => c.replace(/\*\*/g, '').padEnd(widths[i] ?? 0)).join('  ');
  return [line(SUMMARY_HEADER), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** What binds where a target is missed, from the figures themselves. */
function notes(r: Results): string[] {
  const out: string[] = [];
  const big = r.scale[r.scale.length - 1]!;
  const ceiling1 = (r.settings.requestModelLimits.rpm / 60) * 20;
  const asBuilt = r.limiter[0];
  if (asBuilt) {
    out.push(
      `Scenario 1: ${pct(big.drain.steady.inputsPerS / ceiling1)} of the ceiling; the shared limiter alone admits ${pct(asBuilt.ratio)} of RPM/60 ` +
        `(${f(asBuilt.requestsPerS, 2)} of ${f(asBuilt.ceilingRequestsPerS, 2)} requests/s), so the pipeline reaches ${pct(big.drain.steady.requestsPerS / asBuilt.requestsPerS)} of what its limiter lets through. ` +
        `The limiter hands out send times 1 / (RPM/60 x (1 - margin)) apart (margin ${pct(asBuilt.margin)} at the start), so it allows ${pct(1 - asBuilt.margin)} of the ceiling at most.`,
    );
  }
  if (big.index.fullMode) {
    const pages = Math.max(1, Math.ceil(big.objects / 1000));
    const list = (big.bareListing.seconds / pages) * 1000;
    const full = (big.index.fullMode.scanS / pages) * 1000;
    const incr = (big.index.scanS / pages) * 1000;
    out.push(
      `Scenario 4, per page of 1,000 keys: listing ${f(list, 0)} ms; the incremental lookup of the page's points in Qdrant ${f(incr - full, 0)} ms (incremental - full); ` +
        `queuing the page's jobs and the run's bookkeeping ${f(full - list, 0)} ms (full - listing). The producer does these one after the other, page by page: nothing overlaps the next listing.`,
    );
  }
  out.push(
    `Redis per queued job at ${big.objects.toLocaleString('en-US')} objects: ${f(big.redis.bytesPerJob, 0)} B, of which the job hash ${f(big.redis.jobHashBytes, 0)} B (its data: ${f(big.objects / big.index.jobs, 1)} object references of key, ETag, size, time and modality, the run's settings, the job options) ` +
      `and the deduplication key ${f(big.redis.dedupKeyBytes, 0)} B; the rest (${f(big.redis.otherBytesPerJob, 0)} B) is the wait list, the events stream and the run's set of queued job ids.`,
  );
  const mid = r.scale[r.scale.length - 2];
  out.push(
    `Worker VmRSS at 25/50/75/100% of the largest drain: ${big.workers.rssMBAtQuarters.map((x) => f(x, 0)).join(' / ')} MB (peak ${f(big.workers.peakRssMB, 0)} MB)` +
      (mid
        ? `; peak ${f(mid.workers.peakRssMB, 0)} MB at ${mid.objects.toLocaleString('en-US')} objects, ${f(big.workers.peakRssMB, 0)} MB at ${big.objects.toLocaleString('en-US')} (${pct(big.workers.peakRssMB / mid.workers.peakRssMB - 1)}).`
        : '.'),
  );
  const where = [
    ...r.scale.map((x) => [`${x.objects.toLocaleString('en-US')}-object drain`, n429(x.throttled429)] as const),
    ['scenario 2', n429(r.tokens.throttled429)] as const,
    ...r.mixed.map((m) => [`scenario 3 ${m.layout}`, n429(m.throttled429)] as const),
    ['scenario 6 (ours)', n429(r.peers[0]?.throttled429 ?? {})] as const,
  ].filter(([, k]) => k > 0);
  const paced = [
    ...r.scale.map((x) => x.admissions),
    r.tokens.admissions,
    ...(r.peers[0]?.admissions ? [r.peers[0].admissions] : []),
  ].every((a) => a.maxIn1s <= a.rps);
  if (where.length > 0 && paced && r.tokens.admissions.maxTokensIn60s <= r.tokens.tpm) {
    out.push(
      `429s received by our pipeline: ${where.map(([w, k]) => `${k} in the ${w}`).join(', ')}. Our limiter's admissions stayed within RPM/60 in every second and within TPM in every minute ` +
        `(most tokens admitted in 60 s in scenario 2: ${r.tokens.admissions.maxTokensIn60s.toLocaleString('en-US')} of ${r.tokens.tpm.toLocaleString('en-US')}), so the provider saw requests bunched by the time between admission and arrival ` +
        `(more than the limiter's slack: the two cores are shared with S3, the API simulator and Qdrant, and with anything else the machine runs).`,
    );
  } else if (where.length > 0) {
    out.push(
      `429s received by our pipeline: ${where.map(([w, k]) => `${k} in the ${w}`).join(', ')}; our limiter admitted more than the provider's limits allow (see admissions in results.json).`,
    );
  }
  const exit = Math.max(...r.tokens.workerExitAfterSigtermS);
  if (exit > 5) {
    out.push(
      `Scenario 2's workers, stopped with SIGTERM and DRAIN_TIMEOUT_MS=2000 while their jobs waited at the limiter for the next minute's tokens, exited ${r.tokens.workerExitAfterSigtermS.map((x) => f(x, 1)).join(' and ')} s after the signal` +
        `${exit >= r.tokens.stopGraceS - 0.5 ? ` (killed at ${r.tokens.stopGraceS} s)` : ''}: the drain timeout does not bound the exit; the jobs it gives up on go on sending their requests.`,
    );
  }
  return out;
}

function markdown(r: Results): string {
  const s = r.settings;
  const out: string[] = [];
  out.push(`# Benchmark results${s.quick ? ' (--quick)' : ''}`, '');
  out.push(
    `Run ${r.startedAt}, ${f(r.wallS / 60, 1)} minutes (${Object.entries(r.phasesS)
      .map(([k, v]) => `${k} ${f(v, 0)} s`)
      .join(
        ', ',
      )}). Produced by \`npm run bench${s.quick ? ' -- --quick' : ''}\`; every figure is also in ${s.quick ? 'results-quick.json' : 'results.json'}.`,
    '',
  );
  out.push(
    `Machine: ${r.machine.cpu}, ${r.machine.cores} cores, ${f(r.machine.memoryGB, 1)} GB, ${r.machine.os}; busy ${pct(r.machine.busyShare)} of the run: ` +
      `${f(r.machine.benchCpuS, 0)} CPU s by the benchmark's processes, ${f(r.machine.otherCpuS, 0)} CPU s by other processes on the machine. Versions: ${Object.entries(
        r.versions,
      )
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}.`,
    '',
  );
  out.push(
    `Settings: simulator latency ${s.latency.fixedMs} ms + ${s.latency.perInputMs} ms an input + jitter up to ${s.latency.jitterMs} ms, rate limits \`documented\`; ` +
      `${s.requestModel}'s documented ${s.requestModelLimits.documentedRpm.toLocaleString('en-US')} RPM / ${s.requestModelLimits.documentedTpm.toLocaleString('en-US')} TPM scaled by ${s.requestModelScale} to **${s.requestModelLimits.rpm} RPM / ${s.requestModelLimits.tpm.toLocaleString('en-US')} TPM** ` +
      `with MODEL_OVERRIDES \`${JSON.stringify(s.modelOverrides)}\`, given to the simulator and to every CLI process (the documented quota, 400 inputs/s, is more than two cores shared by S3, the API simulator, Qdrant and the workers can fetch and embed: see CPU below); ` +
      `${s.tokenModel} at its documented limits; ${s.workers} worker processes, WORKER_CONCURRENCY ${s.concurrency}, other variables at their defaults; Qdrant: ${s.qdrant}; vectors at each model's default dimension.`,
    '',
  );
  out.push('## Summary', '', table(SUMMARY_HEADER, summaryRows(r)), '');
  out.push('## What binds', '', ...notes(r).map((n) => `- ${n}`), '');
  out.push(
    '## The shared rate limiter alone',
    '',
    'src/rate-limit.ts against the bench Redis, no API: as many waiters as job slots, each holding its admission for the mean simulated latency.',
    '',
  );
  out.push(
    table(
      ['limiter', 'margin', 'RPM', 'waiters', 'admitted/s', 'RPM/60', 'ratio'],
      r.limiter.map((l) => [
        l.label,
        pct(l.margin),
        String(l.rpm),
        String(l.waiters),
        f(l.requestsPerS, 2),
        f(l.ceilingRequestsPerS, 2),
        pct(l.ratio),
      ]),
    ),
    '',
  );
  out.push('## Scenarios 1, 4, 5: short texts at three sizes', '');
  out.push(
    table(
      [
        'objects',
        'bare listing/s',
        'index scan+enqueue/s',
        'ratio',
        'index wall s',
        'jobs',
        'Redis B/job',
        'job hash B',
        'dedup key B',
        'producer RSS MB',
        'worker RSS MB',
        'drain s',
        'steady inputs/s',
        'inputs/request',
        'wall ms/object',
        'CPU s/1k objects',
        'machine load',
        '429s',
        'retries',
      ],
      r.scale.map((x) => [
        x.objects.toLocaleString('en-US'),
        f(x.bareListing.objectsPerS, 0),
        f(x.index.objectsPerS, 0),
        pct(x.index.ratioToBare),
        f(x.index.wallS, 1),
        String(x.index.jobs),
        f(x.redis.bytesPerJob, 0),
        f(x.redis.jobHashBytes, 0),
        f(x.redis.dedupKeyBytes, 0),
        f(x.producer.peakRssMB, 0),
        f(x.workers.peakRssMB, 0),
        f(x.drain.wallS, 1),
        f(x.drain.steady.inputsPerS, 1),
        f(x.drain.inputsPerRequest, 2),
        f(x.wallMsPerObject, 2),
        f(x.cpuSPer1000Objects, 2),
        pct(x.machineLoad),
        String(n429(x.throttled429)),
        String(x.runCounters.retries),
      ]),
    ),
    '',
  );
  const big = r.scale[r.scale.length - 1]!;
  out.push(
    `Server CPU during the ${big.objects.toLocaleString('en-US')}-object drain (${f(big.drain.wallS, 1)} s): ${Object.entries(
      big.serversCpuS,
    )
      .map(([k, v]) => `${k} ${f(v, 1)} s`)
      .join(', ')}; workers ${f(big.workers.cpuS, 1)} s (${f(big.workers.startupCpuS, 1)} s of it start-up).`,
    '',
  );
  if (r.scale.length >= 2) {
    const a = r.scale[r.scale.length - 2]!;
    const slope = (big.redis.usedMemoryDelta - a.redis.usedMemoryDelta) / (big.index.jobs - a.index.jobs);
    out.push(
      `Marginal Redis memory per queued job between the two largest sizes: ${f(slope, 0)} B (${f(slope / (big.objects / big.index.jobs), 0)} B an object at ${f(big.objects / big.index.jobs, 1)} objects a job).`,
      '',
    );
  }
  out.push('## Scenario 2: long texts, token-bound', '');
  const t = r.tokens;
  out.push(
    table(
      [
        'model',
        'texts',
        'TPM',
        'RPM',
        'ceiling tokens/s',
        'tokens/s',
        'ratio',
        '60 s windows',
        'whole-run tokens/s',
        'tokens/request',
        'cap',
        'requests',
        'most tokens admitted in 60 s',
        'backlog at stop',
        '429s',
        'worker exit after SIGTERM s',
      ],
      [
        [
          t.model,
          String(t.texts),
          t.tpm.toLocaleString('en-US'),
          String(t.rpm),
          f(t.ceilingTokensPerS, 1),
          f(t.tokensPerS, 1),
          pct(t.ratio),
          String(t.windows),
          f(t.wholeRunTokensPerS, 1),
          f(t.tokensPerRequest, 0),
          String(t.requestTokenCap),
          String(t.requests),
          t.admissions.maxTokensIn60s.toLocaleString('en-US'),
          String(t.backlogAtStop),
          String(n429(t.throttled429)),
          t.workerExitAfterSigtermS.map((x) => f(x, 1)).join(', '),
        ],
      ],
    ),
    '',
  );
  out.push('## Scenario 3: images and texts', '');
  out.push(
    table(
      [
        'layout',
        'objects',
        'images',
        'requests',
        'fewest possible',
        'inputs/request',
        'ceiling',
        'ratio',
        'inputs/s',
        'ceiling inputs/s',
        'image tokens',
        '429s',
      ],
      r.mixed.map((m) => [
        m.prefix,
        String(m.objects),
        String(m.images),
        String(m.requests),
        String(m.minRequests),
        f(m.inputsPerRequest, 2),
        f(m.ceilingInputsPerRequest, 2),
        pct(m.ratio),
        f(m.inputsPerS, 1),
        f(m.ceilingInputsPerS, 1),
        String(m.imageTokens),
        String(n429(m.throttled429)),
      ]),
    ),
    '',
  );
  if (r.pacing) out.push('## Scenario 8: pacing at the told quota and at half of it', '', pacingMarkdown(r.pacing), '');
  out.push('## Scenario 6: peers on the same bucket, at the same quota', '');
  out.push(
    table(
      [
        'pipeline',
        'objects',
        'seconds',
        'objects/s',
        'ours / it',
        'requests',
        'inputs/request',
        '429s',
        'CPU s',
        'peak RSS MB',
        'note',
      ],
      r.peers.map((p) => [
        p.name,
        String(p.objects),
        f(p.seconds, 1),
        f(p.objectsPerS, 1),
        `x${f(p.oursRatio, 2)}`,
        String(p.requests),
        f(p.inputsPerRequest, 2),
        String(n429(p.throttled429)),
        f(p.cpuS, 1),
        f(p.peakRssMB, 0),
        p.note,
      ]),
    ),
    '',
  );
  out.push(
    `LangChain.js settings: index() batchSize ${s.langchain.batchSize}, cleanup incremental, ${s.langchain.textsPerRequest} texts a request, AsyncCaller maxConcurrency ${s.langchain.maxConcurrency}, maxRetries ${s.langchain.maxRetries}, a 429 retried after max(1 s, AsyncCaller's backoff); its loader reads ${s.langchain.fetchConcurrency} objects at once.`,
    '',
  );
  out.push(...listenMarkdown(r.listen));
  return out.join('\n');
}

/** results.md/json; a --quick run writes results-quick.md/json, so it never replaces the published full run. */
export function writeResults(r: Results): { md: string; json: string } {
  const base = r.settings.quick ? 'results-quick' : 'results';
  const md = join(ROOT, 'bench', `${base}.md`);
  const json = join(ROOT, 'bench', `${base}.json`);
  writeFileSync(json, `${JSON.stringify(r, null, 2)}\n`);
  writeFileSync(md, `${markdown(r)}\n`);
  return { md, json };
}
