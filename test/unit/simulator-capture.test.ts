/** The simulator's request log (src/simulator/capture.ts) and its flag. */
import { describe, it, expect } from '@jest/globals';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ConfigError } from '../../src/errors.js';
import { ABBREVIATE_OVER, RequestLog, abbreviate, redactAuthorization } from '../../src/simulator/capture.js';
import { simulatorOptionsFromFlags } from '../../src/simulator/cli.js';
import { resolveSimulatorOptions } from '../../src/simulator/options.js';

const SECRET = 'sk-capture-SECRET-42';

const request = (headers: Record<string, string | string[]>, url = '/api/v1/x?y=1'): IncomingMessage =>
  ({ method: 'POST', url, headers }) as unknown as IncomingMessage;
const response = (): ServerResponse => ({}) as ServerResponse;

describe('the request log', () => {
  it('keeps the scheme of the Authorization header and nothing of its value', () => {
    expect(redactAuthorization(`Bearer ${SECRET}`)).toBe('Bearer [redacted]');
    expect(redactAuthorization(SECRET)).toBe('[redacted]');
    expect(redactAuthorization('')).toBe('[redacted]');
  });

  it('abbreviates long strings to a prefix, their length and a digest; equal strings stay equal', () => {
    const short = 'x'.repeat(ABBREVIATE_OVER);
    expect(abbreviate(short)).toBe(short);
    const long = `data:image/png;base64,${'A'.repeat(2000)}`;
    expect(abbreviate(long)).toMatch(/^data:image\/png;base64,A+…\[2022 chars, sha256 [0-9a-f]{16}\]$/);
    expect(abbreviate(long)).toBe(abbreviate(`${long}`));
    expect(abbreviate(long)).not.toBe(abbreviate(`${long.slice(0, -1)}B`));
  });

  it('records method, path, headers and body with the key cut out everywhere, then the answer', () => {
    const log = new RequestLog(10, SECRET);
    const res = response();
    const body = {
      model: 'm',
      input: { contents: [`say ${SECRET}`, { image: `data:image/png;base64,${'A'.repeat(600)}` }] },
      parameters: {},
    };
    log.record(
      request({ authorization: `Bearer ${SECRET}`, 'x-echo': `k=${SECRET}`, 'x-many': ['a', 'b'] }),
      res,
      Buffer.from(JSON.stringify(body)),
      42,
    );
    log.answered(res, 401, { code: 'InvalidApiKey', message: 'Invalid API-key provided.', request_id: 'r-1' });
    const [entry] = log.list();
    expect(entry).toMatchObject({
      seq: 1,
      method: 'POST',
      path: '/api/v1/x?y=1',
      headers: { authorization: 'Bearer [redacted]', 'x-echo': 'k=[redacted]', 'x-many': 'a, b' },
      bodyBytes: 42,
      answer: { status: 401, code: 'InvalidApiKey', requestId: 'r-1' },
    });
    expect((entry?.body as typeof body).input.contents[0]).toBe('say [redacted]');
    expect(JSON.stringify(log.list())).not.toContain(SECRET);
  });

  it('keeps only the latest entries, a body that is not JSON by its size, and empties on reset', () => {
    const log = new RequestLog(2, SECRET);
    for (let i = 0; i < 3; i++) log.record(request({}), response(), Buffer.from(i === 2 ? 'not json' : '{}'), 8);
    log.record(request({}), response(), undefined, 7_000_000);
    expect(log.list().map((e) => [e.seq, 'body' in e, e.bodyBytes])).toEqual([
      [3, false, 8],
      [4, false, 7_000_000],
    ]);
    log.reset();
    expect(log.list()).toEqual([]);
  });

  it('records nothing when off (the default)', () => {
    const log = new RequestLog(0, SECRET);
    log.record(request({}), response(), Buffer.from('{}'), 2);
    expect(log.list()).toEqual([]);
    expect(resolveSimulatorOptions({ apiKey: 'k' }).captureRequests).toBe(0);
  });

  it('--capture-requests sets it; a bad value names the flag', () => {
    expect(simulatorOptionsFromFlags({ captureRequests: '50' }, { DASHSCOPE_API_KEY: 'k' }).captureRequests).toBe(50);
    expect(() => simulatorOptionsFromFlags({ captureRequests: '-1' }, { DASHSCOPE_API_KEY: 'k' })).toThrow(ConfigError);
    expect(() => simulatorOptionsFromFlags({ captureRequests: 'all' }, { DASHSCOPE_API_KEY: 'k' })).toThrow(
      /^--capture-requests: /,
    );
  });
});
