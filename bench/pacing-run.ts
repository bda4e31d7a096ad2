/**
 * `npm run bench:pacing` (`-- --quick` for a shorter token-bound row): scenario 8 alone
 * (bench/scenarios/pacing.ts), the token-bound scenario 2 and the limiter's cost in
 * Redis, on servers of their own as `npm run bench` starts them; writes
 * bench/results-pacing.md and bench/results-pacing.json. `npm run bench` runs the same
 * rows among its scenarios.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBenchEnv } from './lib/env.js';
import { longTexts, seedBucket, shortTexts, verifyBucket } from './lib/fill.js';
import { ProcSampler, ROOT, stopChildren } from './lib/procs.js';
import { pacingMarkdown, runPacing } from './scenarios/pacing-suite.js';
import { benchSettings } from './settings.js';

const quick = process.argv.includes('--quick');
const settings = benchSettings(quick);
const t0 = performance.now();
const log = (s: string): void =>
  void process.stdout.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);
const env = await startBenchEnv(settings.latency, JSON.stringify(settings.modelOverrides));
const sampler = new ProcSampler();
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    sampler.stop();
    stopChildren();
    void env.close().finally(() => process.exit(130));
  });
}
try {
  log('fill buckets');
  const short = shortTexts(settings.pacingTexts);
  await seedBucket(env.s3client, env.s3.dir, 'bench-pacing', short);
  await verifyBucket(env.s3client, 'bench-pacing', short);
  const long = longTexts(settings.longTexts);
  await seedBucket(env.s3client, env.s3.dir, 'bench-long', long);
  await verifyBucket(env.s3client, 'bench-long', long);
  const results = {
    startedAt: new Date().toISOString(),
    quick,
    ...(await runPacing(env, settings, sampler, 'bench-pacing', 'bench-long', log)),
    wallS: 0,
  };
  results.wallS = (performance.now() - t0) / 1000;
  writeFileSync(join(ROOT, 'bench', 'results-pacing.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(
    join(ROOT, 'bench', 'results-pacing.md'),
    `# Pacing (scenario 8), run alone\n\nRun ${results.startedAt}, ${(results.wallS / 60).toFixed(1)} minutes, by \`npm run bench:pacing${quick ? ' -- --quick' : ''}\`.\n\n${pacingMarkdown(results)}\n`,
  );
  process.stdout.write(`\n${pacingMarkdown(results)}\n`);
} finally {
  sampler.stop();
  stopChildren();
  await env.close();
}
process.exit(0);
