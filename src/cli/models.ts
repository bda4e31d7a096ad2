/** `mm-ingest models`: the model catalog as this installation resolves it (overrides applied). */
import type { Command } from 'commander';
import { MODEL_NAMES, parseModelOverrides, resolveModel } from '../models.js';
import type { ModelSpec } from '../models.js';

const fmt = (n: number | null): string => (n === null ? 'none' : n.toLocaleString('en-US'));

export function describeModel(m: ModelSpec): string {
  return [
    `${m.name}`,
    `  dimensions      ${m.dimensions.join(', ')} (default ${m.defaultDimension}${m.acceptsDimension ? '' : ', fixed: no dimension parameter'})`,
    `  text limit      ${fmt(m.textTokenLimit)} tokens ${m.textLimitScope}`,
    `  per request     elements ${fmt(m.maxElements)}, images ${fmt(m.maxImagesPerRequest)}, videos ${fmt(m.maxVideosPerRequest)}`,
    `  images          ${fmt(m.imageMaxBytes)} bytes; ${m.imageFormats.join(' ')}${m.multiImagesMax ? `; multi_images up to ${m.multiImagesMax}` : ''}`,
    `  videos          ${fmt(m.videoMaxBytes)} bytes; ${m.videoFormats.join(' ')} (URL only)`,
    `  modes           ${[m.independent ? 'independent' : '', m.fused ? 'fused' : ''].filter(Boolean).join(' + ')}`,
    `  price (USD/1M)  text ${m.priceTextPerMTokens}, image/video ${m.priceImagePerMTokens}`,
    `  rate limits     ${fmt(m.rpm)} RPM, ${fmt(m.tpm)} TPM`,
    ...m.notes.map((n) => `  note            ${n}`),
  ].join('\n');
}

export function registerModelsCommand(program: Command): void {
  program
    .command('models')
    .description('print the model catalog with its limits (MODEL_OVERRIDES applied)')
    .option('--json', 'machine-readable output')
    .option('--model-overrides <json>', 'per-model limit overrides as JSON (default: $MODEL_OVERRIDES)')
    .action((flags: { json?: boolean; modelOverrides?: string }) => {
      const source = flags.modelOverrides !== undefined ? '--model-overrides' : 'MODEL_OVERRIDES';
      const overrides = parseModelOverrides(flags.modelOverrides ?? process.env.MODEL_OVERRIDES, source);
      const specs = MODEL_NAMES.map((n) => resolveModel(n, overrides));
      process.stdout.write(
        flags.json ? `${JSON.stringify(specs, null, 2)}\n` : `${specs.map(describeModel).join('\n\n')}\n`,
      );
    });
}
