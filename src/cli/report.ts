/** `mm-ingest runs`, `runs show ID` and `search`: what last night did, and whether the index works. */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { loadConfig, readBounds } from '../config.js';
import { embeddingClient, objectStore, runStore, vectorStore } from '../connections.js';
import { ConfigError } from '../errors.js';
import { imageDataUri } from '../media.js';
import { resolveDimension, resolveModel } from '../models.js';
import { requestParameters } from '../request-body.js';
import { prepareImageBytes } from '../prepare.js';
import { buildReport, formatReport } from '../report.js';
import { pacingView } from '../rate-limit-view.js';
import { estimateRun } from '../estimate.js';
import { qwenTokens } from '../tokens.js';
import { checkServices, commandRedis } from './connect.js';
import { collect, positiveInt, withConnectionFlags } from './options.js';
import { printable } from './terminal.js';

export function registerReportCommands(program: Command): void {
  withConnectionFlags(
    program
      .command('estimate')
      .description('scan a bucket without embedding: expected requests, tokens, cost and duration at the rate limit')
      .requiredOption('--bucket <name>', 'the S3 bucket')
      .option('--prefix <prefix>', 'only keys under this prefix', '')
      .requiredOption('--model <name>', 'the embedding model')
      .option('--include <glob>', 'only keys matching (repeatable)', collect)
      .option('--exclude <glob>', 'leave out keys matching (repeatable)', collect)
      .option('--sample <n>', 'texts and images downloaded to measure tokens (default 200)', positiveInt('--sample'))
      .option(
        '--page-size <n>',
        'keys per listing page, as the run will use (default 1000)',
        positiveInt('--page-size'),
      )
      .option('--json', 'machine-readable output'),
  ).action(
    async (flags: {
      bucket: string;
      prefix: string;
      model: string;
      include?: string[];
      exclude?: string[];
      sample?: number;
      pageSize?: number;
      json?: boolean;
    }) => {
      const config = loadConfig(process.env, flags);
      const spec = resolveModel(flags.model, config.models);
      const store = objectStore(config);
      await checkServices(config, { s3: { store, bucket: flags.bucket } });
      const e = await estimateRun(store, qwenTokens, spec, {
        bucket: flags.bucket,
        prefix: flags.prefix,
        model: spec,
        bounds: readBounds(config),
        imageMode: config.imageMode,
        ...(config.chunkTokens !== undefined ? { chunkTokens: config.chunkTokens } : {}),
        ...(flags.include ? { include: flags.include } : {}),
        ...(flags.exclude ? { exclude: flags.exclude } : {}),
        ...(flags.sample !== undefined ? { sample: flags.sample } : {}),
        ...(flags.pageSize !== undefined ? { pageSize: flags.pageSize } : {}),
      });
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(e, null, 2)}\n`);
        return;
      }
      const n = (x: number): string => Math.round(x).toLocaleString('en-US');
      process.stdout.write(
        [
          `estimate for s3://${flags.bucket}/${flags.prefix} with ${spec.name}:`,
          `  objects: ${n(e.objects.text)} texts (${n(e.textBytes)} bytes), ${n(e.objects.image)} images, ${n(e.objects.video)} videos, ${n(e.objects.skipped)} skipped`,
          `  measured on ${e.sampled.texts} texts and ${e.sampled.images} images: ${e.tokensPerByte.toFixed(3)} tokens a byte`,
          `  ${n(e.inputs)} inputs in about ${n(e.requests)} requests; ${n(e.textTokens)} text tokens, ${n(e.imageTokens)} image tokens (videos not counted)`,
          `  estimated cost $${e.costUsd.toFixed(4)}; ${e.minutesAtRateLimit === null ? 'no documented rate limit' : `about ${e.minutesAtRateLimit.toFixed(1)} minutes at ${spec.rpm ?? '-'} RPM / ${spec.tpm ?? '-'} TPM`}`,
        ].join('\n') + '\n',
      );
    },
  );

  const runsCmd = withConnectionFlags(
    program
      .command('runs')
      .description('recent runs, newest first')
      .option('--limit <n>', 'how many (default 20)', positiveInt('--limit'))
      .option('--json', 'machine-readable output'),
  ).action(async (flags: { limit?: number; json?: boolean }) => {
    const config = loadConfig(process.env, flags);
    const redis = await commandRedis(config);
    try {
      const runs = runStore(config, redis);
      const reports = [];
      for (const id of await runs.latest(flags.limit ?? 20)) {
        const run = await runs.get(id);
        if (run) reports.push(buildReport(run, await runs.codeCounts(id), config.models));
      }
      if (flags.json) {
        process.stdout.write(`${JSON.stringify(reports, null, 2)}\n`);
        return;
      }
      if (reports.length === 0) process.stdout.write('no runs yet\n');
      for (const r of reports) {
        process.stdout.write(
          `${r.id}  ${r.status.padEnd(9)} ${r.collection} ${r.model}  ${r.indexed} indexed, ${r.failed} failed, ${r.unchanged} unchanged  ${r.requests} requests  $${Number.isNaN(r.costUsd) ? '?' : r.costUsd.toFixed(4)}\n`,
        );
      }
    } finally {
      await redis.quit();
    }
  });

  withConnectionFlags(
    runsCmd
      .command('show')
      .description('one run in full')
      .argument('<id>', 'the run id')
      .option('--json', 'machine-readable output'),
  ).action(async (id: string, _flags: unknown, cmd: Command) => {
    // `--json` after `show` is parsed by `runs` too (it has the same option): read both
    const flags = cmd.optsWithGlobals<{ json?: boolean }>();
    const config = loadConfig(process.env, flags);
    const redis = await commandRedis(config);
    try {
      const runs = runStore(config, redis);
      const run = await runs.get(id);
      if (!run) throw new ConfigError('run', `run ${id} does not exist`);
      const built = buildReport(run, await runs.codeCounts(id), config.models);
      let spec;
      try {
        spec = resolveModel(run.model, config.models);
      } catch {
        spec = undefined; // a model no longer in the catalog: no pacing to show
      }
      const pacing = spec ? await pacingView(redis, config, spec.name, { rpm: spec.rpm, tpm: spec.tpm }) : undefined;
      const report = pacing ? { ...built, rateLimit: pacing } : built;
      process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`);
    } finally {
      await redis.quit();
    }
  });

  withConnectionFlags(
    program
      .command('search')
      .description(
        'embed a query (text, or --image PATH) and print the closest points: the quickest proof that an index works',
      )
      .argument('[text]', 'the query text')
      .requiredOption('--collection <name>', 'the collection (or alias)')
      .option('--image <path>', 'search with an image file instead of text')
      .option('--model <name>', "the collection's model (default: read from its points)")
      .option(
        '--dimension <n>',
        "the collection's dimension (default: read from its points)",
        positiveInt('--dimension'),
      )
      .option('--limit <n>', 'how many results (default 10)', positiveInt('--limit'))
      .option('--json', 'machine-readable output'),
  ).action(
    async (
      text: string | undefined,
      flags: { collection: string; image?: string; model?: string; dimension?: number; limit?: number; json?: boolean },
    ) => {
      const config = loadConfig(process.env, flags);
      if (!text && !flags.image) throw new ConfigError('search', 'give a query text or --image PATH');
      // a model named on the command line is checked before anything is asked of Qdrant
      if (flags.model !== undefined) resolveModel(flags.model, config.models);
      const vectors = vectorStore(config);
      await checkServices(config, { qdrant: vectors });
      let model = flags.model;
      let dimension = flags.dimension;
      if (!model || !dimension) {
        // every point carries its model and dimension: read them from any one
        const sample = (await vectors.scroll(flags.collection, {}, ['model', 'dimension'])).points[0];
        if (!sample) throw new ConfigError('--collection', `"${flags.collection}" has no points to search`);
        model ??= String(sample.payload.model);
        dimension ??= Number(sample.payload.dimension);
      }
      const spec = resolveModel(model, config.models);
      const dim = resolveDimension(spec, dimension);
      let content: string | { image: string };
      if (flags.image) {
        const bytes = await readFile(flags.image);
        const image = prepareImageBytes(flags.image, bytes);
        if ('failure' in image) throw new ConfigError('--image', `${flags.image}: ${image.failure.reason}`);
        content = { image: imageDataUri(image.ok.format, bytes) };
      } else {
        content = text!;
      }
      const client = embeddingClient(config);
      const result = await client.embed({
        model: spec.name,
        contents: [content],
        parameters: requestParameters({ model: spec, dimension: dim }),
        dimension: dim,
      });
      const hits = await vectors.search(flags.collection, result.vectors[0] ?? [], flags.limit ?? 10);
      if (flags.json) {
        process.stdout.write(
          `${JSON.stringify(
            hits.map((h) => ({ score: h.score, ...h.payload })),
            null,
            2,
          )}\n`,
        );
        return;
      }
      if (hits.length === 0) process.stdout.write('no matches\n');
      for (const h of hits) {
        const p = h.payload;
        const chunk = Number(p.chunk_count ?? 1) > 1 ? ` chunk ${String(p.chunk)}/${String(p.chunk_count)}` : '';
        process.stdout.write(
          `${h.score.toFixed(4)}  ${String(p.modality).padEnd(6)} ${printable(String(p.key))}${chunk}\n`,
        );
      }
    },
  );
}
