/**
 * What the worker's metrics server and the dashboard expose on the network, asked with
 * real HTTP requests of real `worker` and `dashboard` processes:
 * - the metrics server listens on 127.0.0.1 unless told otherwise (`--metrics-host`,
 *   METRICS_HOST). 127.0.0.2 is a loopback address too, but a server bound to 127.0.0.1
 *   does not answer on it, while one bound to every interface does: that tells the two
 *   apart on any Linux machine, with the machine's other addresses tried as well;
 * - the dashboard answers only a Host it is known by (DNS rebinding: a page of another
 *   site whose name was pointed at 127.0.0.1 sends its own name), refuses write actions
 *   from another site's page, and beyond loopback refuses to start without
 *   DASHBOARD_TOKEN and then answers nothing, reads or writes, without the token.
 */
import { request } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import { networkInterfaces } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Queue } from 'bullmq';
import { figures, runCli, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { BackgroundCli, PipelineEnv } from '../support/pipeline.js';
import { freePort } from '../support/ports.js';

const TOKEN = 'dashboard-token-of-the-test-0123456789';

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One HTTP request to `address:port` with exactly these headers (Host included), or the connection error's code. */
function http(
  address: string,
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string> } = {},
): Promise<Answer | string> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: address,
        port,
        path,
        method: options.method ?? 'GET',
        headers: { host: `${address}:${port}`, ...options.headers },
        timeout: 5000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.end();
  });
}

const statusOf = (a: Answer | string): number | string => (typeof a === 'string' ? a : a.status);

/** The machine's addresses other than loopback (none on some machines), and a loopback address that is not 127.0.0.1. */
const OTHER_ADDRESSES = [
  '127.0.0.2',
  ...Object.values(networkInterfaces()).flatMap((list) =>
    (list ?? []).filter((a) => a.family === 'IPv4' && !a.internal).map((a) => a.address),
  ),
];

describe('the metrics server listens on loopback by default', () => {
  let env: PipelineEnv;
  const workers: BackgroundCli[] = [];

  beforeAll(async () => {
    env = await startPipelineEnv();
  }, 120_000);

  afterAll(async () => {
    for (const w of workers) await w.stop('SIGTERM');
    await env?.close();
  });

  async function metricsPort(
    args: readonly string[],
    extra: NodeJS.ProcessEnv = {},
  ): Promise<{ port: number; output: string }> {
    const worker = startCli(['worker', '--no-reindex', '--metrics-port', '0', ...args], { ...env.env, ...extra });
    workers.push(worker);
    await worker.waitFor(/metrics on http:\/\/[^:]+:\d+\/metrics/);
    const port = Number(/metrics on http:\/\/[^:]+:(\d+)\/metrics/.exec(worker.output())?.[1]);
    return { port, output: worker.output() };
  }

  it('answers on 127.0.0.1 and on no other address', async () => {
    const { port, output } = await metricsPort([]);
    expect(output).toContain(`metrics on http://127.0.0.1:${port}/metrics`);
    expect(statusOf(await http('127.0.0.1', port, '/metrics'))).toBe(200);
    for (const address of OTHER_ADDRESSES)
      expect([address, statusOf(await http(address, port, '/metrics'))]).toEqual([address, 'ECONNREFUSED']);
    figures(`metrics server by default: 200 on 127.0.0.1:${port}, ECONNREFUSED on ${OTHER_ADDRESSES.join(', ')}`);
  }, 60_000);

  it('listens on every interface with --metrics-host 0.0.0.0, and on a given one with METRICS_HOST', async () => {
    const every = await metricsPort(['--metrics-host', '0.0.0.0']);
    expect(every.output).toContain(`metrics on http://127.0.0.1:${every.port}/metrics (listening on 0.0.0.0)`);
    for (const address of ['127.0.0.1', ...OTHER_ADDRESSES])
      expect([address, statusOf(await http(address, every.port, '/metrics'))]).toEqual([address, 200]);

    const one = await metricsPort([], { METRICS_HOST: '127.0.0.2' });
    expect(one.output).toContain(`metrics on http://127.0.0.2:${one.port}/metrics`);
    expect(statusOf(await http('127.0.0.2', one.port, '/metrics'))).toBe(200);
    expect(statusOf(await http('127.0.0.1', one.port, '/metrics'))).toBe('ECONNREFUSED');
  }, 60_000);

  it('refuses a malformed METRICS_HOST by name', async () => {
    const started = Date.now();
    const result = await runCli(['worker', '--no-reindex', '--metrics-port', '0'], {
      ...env.env,
      METRICS_HOST: 'every interface',
    });
    expect(result.code).toBe(2);
    expect(result.stderr.trim()).toBe(
      'mm-ingest: configuration error: METRICS_HOST: must be a host name or an IP address, such as 127.0.0.1 or 0.0.0.0 (got "every interface")',
    );
    figures(`METRICS_HOST="every interface": exit ${result.code} in ${Date.now() - started} ms`);
  }, 60_000);
});

describe('the dashboard answers only who it should', () => {
  let env: PipelineEnv;
  let queue: Queue;
  const dashboards: BackgroundCli[] = [];

  beforeAll(async () => {
    env = await startPipelineEnv();
    queue = new Queue('embed', { connection: env.redis, prefix: env.prefix });
  }, 120_000);

  afterAll(async () => {
    for (const d of dashboards) await d.stop('SIGTERM');
    await queue?.close();
    await env?.close();
  });

  async function dashboard(args: readonly string[], extra: NodeJS.ProcessEnv = {}): Promise<number> {
    const port = await freePort();
    const d = startCli(['dashboard', '--port', String(port), ...args], { ...env.env, ...extra });
    dashboards.push(d);
    await d.waitFor(/dashboard on /);
    return port;
  }

  it('on loopback: answers its own names, refuses another Host and write actions from another site', async () => {
    const port = await dashboard([]);
    expect(statusOf(await http('127.0.0.1', port, '/'))).toBe(200);
    expect(statusOf(await http('127.0.0.1', port, '/', { headers: { host: `localhost:${port}` } }))).toBe(200);
    expect(statusOf(await http('127.0.0.1', port, '/api/runs', { headers: { host: `[::1]:${port}` } }))).toBe(200);

    // a rebound name: the browser sends the attacker's host name
    const rebound = await http('127.0.0.1', port, '/api/runs', {
      headers: { host: `rebind.attacker.example:${port}` },
    });
    expect(rebound).toMatchObject({ status: 403 });
    expect((rebound as Answer).body).toBe(
      `refused: Host "rebind.attacker.example:${port}" is not this dashboard's address (127.0.0.1:${port}, localhost:${port}); set DASHBOARD_ALLOWED_HOSTS to add a name\n`,
    );
    expect(
      statusOf(await http('127.0.0.1', port, '/queues/api/queues', { headers: { host: `127.0.0.1:${port + 1}` } })),
    ).toBe(403);

    // another site's page posting to the dashboard: its Origin says so
    const csrf = await http('127.0.0.1', port, '/queues/api/queues/pause', {
      method: 'PUT',
      headers: { origin: 'http://attacker.example' },
    });
    expect(csrf).toMatchObject({ status: 403 });
    expect(await queue.isPaused()).toBe(false);
    // the dashboard's own page may
    expect(
      statusOf(
        await http('127.0.0.1', port, '/queues/api/queues/pause', {
          method: 'PUT',
          headers: { origin: `http://127.0.0.1:${port}` },
        }),
      ),
    ).toBe(200);
    expect(await queue.isPaused()).toBe(true);
    await queue.resume();
    figures(
      `dashboard on 127.0.0.1: Host rebind.attacker.example -> 403, write with Origin attacker.example -> 403 (queue not paused)`,
    );
  }, 60_000);

  it('takes a name listed in DASHBOARD_ALLOWED_HOSTS', async () => {
    const port = await dashboard([], { DASHBOARD_ALLOWED_HOSTS: `dashboard.internal.example:8443,ops.example` });
    expect(statusOf(await http('127.0.0.1', port, '/', { headers: { host: `ops.example:${port}` } }))).toBe(200);
    expect(statusOf(await http('127.0.0.1', port, '/', { headers: { host: `other.example:${port}` } }))).toBe(403);
  }, 60_000);

  it('beyond loopback without DASHBOARD_TOKEN: refuses to start, naming the variable', async () => {
    const port = await freePort();
    const started = Date.now();
    const result = await runCli(['dashboard', '--port', String(port), '--host', '0.0.0.0'], env.env);
    const ms = Date.now() - started;
    expect(result.code).toBe(2);
    const line =
      'mm-ingest: configuration error: DASHBOARD_TOKEN: is not set, and a dashboard listening on 0.0.0.0 is reachable beyond this machine: set DASHBOARD_TOKEN (16 characters or more) to require it, or listen on 127.0.0.1';
    expect(result.stderr.trim()).toBe(line);
    expect(statusOf(await http('127.0.0.1', port, '/'))).toBe('ECONNREFUSED');
    figures(`dashboard --host 0.0.0.0 without DASHBOARD_TOKEN: exit ${result.code} in ${ms} ms: ${line}`);
  }, 60_000);

  it('beyond loopback with DASHBOARD_TOKEN: nothing without the token, reads and writes with it', async () => {
    const port = await dashboard(['--host', '0.0.0.0'], { DASHBOARD_TOKEN: TOKEN });
    const address = OTHER_ADDRESSES.find((a) => a !== '127.0.0.2') ?? '127.0.0.1';
    for (const path of ['/', '/api/runs', '/queues', '/queues/api/queues']) {
      expect([path, statusOf(await http(address, port, path))]).toEqual([path, 401]);
      expect([
        path,
        statusOf(await http(address, port, path, { headers: { authorization: 'Bearer not-the-token' } })),
      ]).toEqual([path, 401]);
      expect([
        path,
        statusOf(await http(address, port, path, { headers: { authorization: `Bearer ${TOKEN}` } })),
      ]).toEqual([path, 200]);
    }
    // Bull Board's write actions: refused without the token, and nothing done
    const embed = `/queues/api/queues/${encodeURIComponent(`${env.prefix}:embed`)}`;
    for (const [method, path] of [
      ['PUT', '/queues/api/queues/pause'],
      ['PUT', `${embed}/pause`],
      ['PUT', `${embed}/clean/completed`],
      ['POST', `${embed}/add`],
    ] as const) {
      expect([path, statusOf(await http(address, port, path, { method }))]).toEqual([path, 401]);
    }
    expect(await queue.isPaused()).toBe(false);
    expect(
      statusOf(
        await http(address, port, `${embed}/pause`, { method: 'PUT', headers: { authorization: `Bearer ${TOKEN}` } }),
      ),
    ).toBe(200);
    expect(await queue.isPaused()).toBe(true);
    await queue.resume();

    // a browser: the link with ?token= sets a cookie and drops the token from the address
    const login = await http(address, port, `/?token=${TOKEN}`);
    expect(login).toMatchObject({ status: 303, headers: { location: '/' } });
    const cookie = String((login as Answer).headers['set-cookie']?.[0] ?? '');
    expect(cookie).toMatch(/^mm_ingest_dashboard=[^;]+; Path=\/; HttpOnly; SameSite=Strict$/);
    const session = cookie.split(';')[0] ?? '';
    expect(statusOf(await http(address, port, '/queues', { headers: { cookie: session } }))).toBe(200);
    expect(statusOf(await http(address, port, `/?token=wrong-${TOKEN}`))).toBe(401);

    // the Host check holds with the token too
    expect(
      statusOf(
        await http(address, port, '/', {
          headers: { host: `rebind.attacker.example:${port}`, authorization: `Bearer ${TOKEN}` },
        }),
      ),
    ).toBe(403);
    figures(
      `dashboard --host 0.0.0.0 with DASHBOARD_TOKEN, asked at ${address}: 401 without the token (pages, API, Bull Board, its pause/clean/add actions), 200 with it`,
    );
  }, 60_000);

  it('on loopback with DASHBOARD_TOKEN set: requires it as well', async () => {
    const port = await dashboard([], { DASHBOARD_TOKEN: TOKEN });
    expect(statusOf(await http('127.0.0.1', port, '/api/runs'))).toBe(401);
    expect(
      statusOf(await http('127.0.0.1', port, '/api/runs', { headers: { authorization: `Bearer ${TOKEN}` } })),
    ).toBe(200);
  }, 60_000);

  it('refuses a short DASHBOARD_TOKEN without printing it', async () => {
    const result = await runCli(['dashboard', '--port', String(await freePort()), '--host', '0.0.0.0'], {
      ...env.env,
      DASHBOARD_TOKEN: 'short-secret',
    });
    expect(result.code).toBe(2);
    expect(result.stderr.trim()).toBe(
      'mm-ingest: configuration error: DASHBOARD_TOKEN: must be at least 16 characters (got 12 characters)',
    );
  }, 60_000);
});
