/**
 * `mm-ingest simulate`: the simulator as a long-running local server, configured by
 * flags. The key comes from --api-key, else DASHSCOPE_API_KEY; model overrides from
 * --model-overrides, else MODEL_OVERRIDES (the same variable the planner reads, so an
 * override moves both). The limits themselves are the simulator's own (contract.ts).
 */
import type { Command } from 'commander';
import { ConfigError } from '../errors.js';
import { parseModelOverrides } from '../models.js';
import { CONTRACT_MODEL_NAMES as MODEL_NAMES } from './contract.js';
import { resolveSimulatorOptions } from './options.js';
import type { FaultOptions, LatencyOptions, RateLimit, RateLimitSetting, SimulatorOptions } from './options.js';

/** Flags as commander gives them (strings; camelCase of the long names). */
export interface SimulateFlags {
  readonly port?: string;
  readonly host?: string;
  readonly apiKey?: string;
  readonly rateLimits?: string;
  readonly rpm?: string;
  readonly tpm?: string;
  readonly latencyMs?: string;
  readonly latencyPerInputMs?: string;
  readonly jitterMs?: string;
  readonly seed?: string;
  readonly fault500?: string;
  readonly fault503?: string;
  readonly fault429?: string;
  readonly burst429Length?: string;
  readonly faultHang?: string;
  readonly hangMs?: string;
  readonly faultDrop?: string;
  readonly maxBodyBytes?: string;
  readonly downloadTimeoutMs?: string;
  readonly modelOverrides?: string;
  readonly captureRequests?: string;
  readonly allowPrivateUrls?: boolean;
}

export const DEFAULT_SIMULATOR_PORT = 8787;

type NumberKind = 'integer' | 'positive integer' | 'non-negative number' | 'rate in [0, 1]' | 'port (0-65535)';

function numberFlag(flag: string, raw: string | undefined, kind: NumberKind): number | undefined {
  if (raw === undefined) return undefined;
  const value = raw.trim() === '' ? NaN : Number(raw);
  const ok =
    Number.isFinite(value) &&
    (kind === 'integer'
      ? Number.isInteger(value)
      : kind === 'positive integer'
        ? Number.isInteger(value) && value > 0
        : kind === 'non-negative number'
          ? value >= 0
          : kind === 'rate in [0, 1]'
            ? value >= 0 && value <= 1
            : Number.isInteger(value) && value >= 0 && value <= 65535);
  if (!ok) throw new ConfigError(flag, `must be a ${kind}, got "${raw}"`);
  return value;
}

/** Drops undefined fields, so the defaults fill them in. */
function defined<T extends object>(o: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}

function rateLimitsFrom(flags: SimulateFlags): RateLimitSetting {
  const base = flags.rateLimits ?? 'documented';
  if (base !== 'documented' && base !== 'off')
    throw new ConfigError('--rate-limits', `must be "documented" or "off", got "${base}"`);
  const rpm = numberFlag('--rpm', flags.rpm, 'positive integer');
  const tpm = numberFlag('--tpm', flags.tpm, 'positive integer');
  if (rpm === undefined && tpm === undefined) return base;
  // --rpm/--tpm apply to every model; under "off" the other limit stays unlimited.
  const each: Partial<RateLimit> = base === 'off' ? { rpm: rpm ?? null, tpm: tpm ?? null } : defined({ rpm, tpm });
  return Object.fromEntries(MODEL_NAMES.map((m) => [m, each]));
}

/** Simulator options from the flags and the environment; throws a ConfigError naming the flag. */
export function simulatorOptionsFromFlags(
  flags: SimulateFlags,
  env: NodeJS.ProcessEnv = process.env,
): SimulatorOptions {
  const apiKey = flags.apiKey ?? env.DASHSCOPE_API_KEY;
  if (apiKey === undefined || apiKey.trim() === '') {
    throw new ConfigError(
      '--api-key',
      'no API key: pass --api-key or set DASHSCOPE_API_KEY (clients must send the same key)',
    );
  }
  const latency: Partial<LatencyOptions> = defined({
    fixedMs: numberFlag('--latency-ms', flags.latencyMs, 'non-negative number'),
    perInputMs: numberFlag('--latency-per-input-ms', flags.latencyPerInputMs, 'non-negative number'),
    jitterMs: numberFlag('--jitter-ms', flags.jitterMs, 'non-negative number'),
  });
  const faults: Partial<FaultOptions> = defined({
    seed: numberFlag('--seed', flags.seed, 'integer'),
    error500Rate: numberFlag('--fault-500', flags.fault500, 'rate in [0, 1]'),
    error503Rate: numberFlag('--fault-503', flags.fault503, 'rate in [0, 1]'),
    burst429Rate: numberFlag('--fault-429', flags.fault429, 'rate in [0, 1]'),
    burst429Length: numberFlag('--burst-429-length', flags.burst429Length, 'positive integer'),
    hangRate: numberFlag('--fault-hang', flags.faultHang, 'rate in [0, 1]'),
    hangMs: numberFlag('--hang-ms', flags.hangMs, 'non-negative number'),
    dropRate: numberFlag('--fault-drop', flags.faultDrop, 'rate in [0, 1]'),
  });
  const overridesText = flags.modelOverrides ?? env.MODEL_OVERRIDES;
  const overridesSource = flags.modelOverrides === undefined ? 'MODEL_OVERRIDES' : '--model-overrides';
  const maxBodyBytes = numberFlag('--max-body-bytes', flags.maxBodyBytes, 'positive integer');
  const downloadTimeoutMs = numberFlag('--download-timeout-ms', flags.downloadTimeoutMs, 'positive integer');
  const captureRequests = numberFlag('--capture-requests', flags.captureRequests, 'integer');
  if (captureRequests !== undefined && captureRequests < 0)
    throw new ConfigError('--capture-requests', `must be 0 or more, got "${flags.captureRequests}"`);
  return resolveSimulatorOptions(
    {
      apiKey,
      port: numberFlag('--port', flags.port, 'port (0-65535)') ?? DEFAULT_SIMULATOR_PORT,
      ...(flags.host === undefined ? {} : { host: flags.host }),
      modelOverrides: parseModelOverrides(overridesText, overridesSource),
      rateLimits: rateLimitsFrom(flags),
      latency,
      faults,
      ...(maxBodyBytes === undefined ? {} : { maxBodyBytes }),
      ...(downloadTimeoutMs === undefined ? {} : { downloadTimeoutMs }),
      ...(captureRequests === undefined ? {} : { captureRequests }),
      ...(flags.allowPrivateUrls === true ? { allowPrivateUrls: true } : {}),
    },
    'simulate flags',
  );
}

export function registerSimulateCommand(program: Command): Command {
  return program
    .command('simulate')
    .description('run a local simulator of the multimodal embedding API (limits, rate limits and faults included)')
    .option('--port <n>', `port to listen on (0: any free port; default ${DEFAULT_SIMULATOR_PORT})`)
    .option('--host <host>', 'address to listen on (default 127.0.0.1)')
    .option('--api-key <key>', 'the one key clients must send (default: $DASHSCOPE_API_KEY)')
    .option('--rate-limits <mode>', 'documented | off (default documented)')
    .option('--rpm <n>', 'requests per minute for every model (over --rate-limits)')
    .option('--tpm <n>', 'input tokens per minute for every model (over --rate-limits)')
    .option('--latency-ms <n>', 'fixed delay before each answer')
    .option('--latency-per-input-ms <n>', 'extra delay per element')
    .option('--jitter-ms <n>', 'uniform extra delay in [0, n)')
    .option('--seed <n>', 'seed of the fault and jitter generators (default 1)')
    .option('--fault-500 <rate>', 'share of requests answered 500 InternalError')
    .option('--fault-503 <rate>', 'share of requests answered 503 ModelUnavailable')
    .option('--fault-429 <rate>', 'share of requests that start a burst of 429 Throttling.BurstRate')
    .option('--burst-429-length <n>', 'requests in a 429 burst (default 3)')
    .option('--fault-hang <rate>', 'share of requests held, then dropped without an answer')
    .option('--hang-ms <n>', 'how long a hung request is held (default 600000)')
    .option('--fault-drop <rate>', 'share of requests whose connection is closed without an answer')
    .option('--max-body-bytes <n>', 'largest request body (default 6291456)')
    .option('--download-timeout-ms <n>', 'time allowed to download a media URL (default 30000)')
    .option('--model-overrides <json>', 'per-model catalog overrides (default: $MODEL_OVERRIDES)')
    .option('--capture-requests <n>', 'keep the last n requests (key redacted) for GET /_sim/requests (default 0: off)')
    .option(
      '--allow-private-urls',
      'download media URLs of loopback and private hosts, which the provider refuses (for URL mode against a local store)',
    )
    .action(async (flags: SimulateFlags, cmd: Command) => {
      let options: SimulatorOptions;
      try {
        options = simulatorOptionsFromFlags(flags);
      } catch (err) {
        if (err instanceof ConfigError) cmd.error(`error: ${err.message}`, { exitCode: 2, code: 'mm-ingest.config' });
        throw err;
      }
      // the server's modules are loaded by this command only, not by every command's start-up
      const { startSimulator } = await import('./server.js');
      const sim = await startSimulator(options).catch((err: unknown) =>
        cmd.error(
          `error: cannot listen on ${options.host}:${options.port}: ${err instanceof Error ? err.message : String(err)}`,
          { exitCode: 1 },
        ),
      );
      process.stdout.write(`simulator listening on ${sim.url} (models: ${MODEL_NAMES.join(', ')})\n`);
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        sim.close().catch((err: unknown) => process.stderr.write(`simulator: close failed: ${String(err)}\n`));
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
}
