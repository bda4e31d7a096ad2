import { describe, it, expect } from '@jest/globals';
import { Command } from 'commander';
import { ConfigError } from '../../src/errors.js';
import { resolveModel } from '../../src/models.js';
import { registerSimulateCommand, simulatorOptionsFromFlags } from '../../src/simulator/cli.js';
import { applyPatch, rateLimitFor, resolveSimulatorOptions } from '../../src/simulator/options.js';

const env = { DASHSCOPE_API_KEY: 'sk-from-env' };

describe('simulator options from flags', () => {
  it('takes the key from --api-key, else from DASHSCOPE_API_KEY, else says how to give one', () => {
    expect(simulatorOptionsFromFlags({ apiKey: 'sk-flag' }, env).apiKey).toBe('sk-flag');
    expect(simulatorOptionsFromFlags({}, env).apiKey).toBe('sk-from-env');
    expect(() => simulatorOptionsFromFlags({}, {})).toThrow(/--api-key.*DASHSCOPE_API_KEY/);
  });

  it('names the flag of a bad number', () => {
    expect(() => simulatorOptionsFromFlags({ rpm: 'ten' }, env)).toThrow(ConfigError);
    expect(() => simulatorOptionsFromFlags({ rpm: 'ten' }, env)).toThrow(/^--rpm: /);
    expect(() => simulatorOptionsFromFlags({ fault500: '1.5' }, env)).toThrow(/^--fault-500: /);
    expect(() => simulatorOptionsFromFlags({ port: '70000' }, env)).toThrow(/^--port: /);
    expect(() => simulatorOptionsFromFlags({ rateLimits: 'some' }, env)).toThrow(/^--rate-limits: /);
  });

  it('maps latency, fault and body flags onto the options', () => {
    const o = simulatorOptionsFromFlags(
      {
        port: '0',
        latencyMs: '5',
        jitterMs: '2',
        seed: '9',
        fault503: '0.25',
        burst429Length: '4',
        hangMs: '100',
        maxBodyBytes: '1000',
      },
      env,
    );
    expect(o).toMatchObject({
      port: 0,
      host: '127.0.0.1',
      maxBodyBytes: 1000,
      latency: { fixedMs: 5, perInputMs: 0, jitterMs: 2 },
      faults: { seed: 9, error503Rate: 0.25, error500Rate: 0, burst429Length: 4, hangMs: 100 },
    });
  });

  it('applies --rpm and --tpm to every model over documented or unlimited limits', () => {
    const plus = resolveModel('tongyi-embedding-vision-plus');
    const documented = simulatorOptionsFromFlags({ rpm: '10' }, env);
    expect(rateLimitFor(documented.rateLimits, plus)).toEqual({ rpm: 10, tpm: 200_000 });
    const off = simulatorOptionsFromFlags({ rateLimits: 'off', tpm: '500' }, env);
    expect(rateLimitFor(off.rateLimits, plus)).toEqual({ rpm: null, tpm: 500 });
    expect(rateLimitFor(simulatorOptionsFromFlags({ rateLimits: 'off' }, env).rateLimits, plus)).toEqual({
      rpm: null,
      tpm: null,
    });
  });

  it('reads model overrides, which move the documented rate limits too', () => {
    const o = simulatorOptionsFromFlags({ modelOverrides: '{"qwen3-vl-embedding":{"rpm":7}}' }, env);
    expect(rateLimitFor(o.rateLimits, resolveModel('qwen3-vl-embedding', o.modelOverrides))).toEqual({
      rpm: 7,
      tpm: 600_000,
    });
    expect(() => simulatorOptionsFromFlags({ modelOverrides: '{nope' }, env)).toThrow(/^--model-overrides: /);
  });

  it('registers every documented flag on the simulate command', () => {
    const cmd = registerSimulateCommand(new Command());
    expect(cmd.name()).toBe('simulate');
    expect(cmd.options.map((o) => o.long)).toEqual(
      expect.arrayContaining([
        '--port',
        '--host',
        '--api-key',
        '--rate-limits',
        '--rpm',
        '--tpm',
        '--latency-ms',
        '--latency-per-input-ms',
        '--jitter-ms',
        '--seed',
        '--fault-500',
        '--fault-503',
        '--fault-429',
        '--burst-429-length',
        '--fault-hang',
        '--hang-ms',
        '--fault-drop',
        '--max-body-bytes',
        '--model-overrides',
      ]),
    );
  });
});

describe('simulator option validation', () => {
  it('refuses fault rates that add up to more than one, and unknown fields', () => {
    expect(() => resolveSimulatorOptions({ apiKey: 'k', faults: { error500Rate: 0.6, dropRate: 0.6 } })).toThrow(
      /add up/,
    );
    const base = resolveSimulatorOptions({ apiKey: 'k' });
    expect(() => applyPatch(base, { faults: { error404Rate: 1 } })).toThrow(ConfigError);
    expect(() => applyPatch(base, { rateLimits: { 'no-such-model': { rpm: 1 } } })).toThrow(/no-such-model/);
  });

  it('keeps what a patch does not name', () => {
    const base = resolveSimulatorOptions({
      apiKey: 'k',
      faults: { seed: 3, error500Rate: 0.1 },
      latency: { fixedMs: 4 },
    });
    const patched = applyPatch(base, { faults: { error503Rate: 0.2 } });
    expect(patched.faults).toMatchObject({ seed: 3, error500Rate: 0.1, error503Rate: 0.2 });
    expect(patched.latency.fixedMs).toBe(4);
  });
});
