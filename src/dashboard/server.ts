/**
 * The operator's dashboard: Bull Board for the embed and reindex queues at `/queues`, and
 * the run reports (the same ones `mm-ingest runs` prints) at `/`, `/runs/:id` and
 * `/api/runs`. One Redis connection serves both.
 *
 * Bull Board can retry, remove and clean jobs: the server listens on 127.0.0.1 unless told
 * otherwise, answers only the Host names it is known by, refuses write actions from other
 * sites' pages, and with DASHBOARD_TOKEN (required beyond loopback) asks every request for
 * it (guard.ts); `readOnly` hides those actions.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import express from 'express';
import type { NextFunction, Request, Response, Router } from 'express';
import type { Config } from '../config.js';
import { embedQueue, redisConnection, reindexQueue, runStore } from '../connections.js';
import { buildReport } from '../report.js';
import type { RunReport } from '../report.js';
import type { ItemOutcome, RunStore } from '../runs.js';
import { redact } from '../redact.js';
import { checkExposure, dashboardGuard } from './guard.js';
import { MAX_ITEM_ROWS, notFoundPage, runPage, runsPage } from './html.js';

export interface DashboardOptions {
  /** 0: any free port. */
  readonly port: number;
  /** @defaultValue 127.0.0.1 */
  readonly host?: string;
  /** Bull Board without its retry/remove/clean/pause actions. @defaultValue false */
  readonly readOnly?: boolean;
  /** Runs listed on `/` and by `/api/runs` without `?limit=`. @defaultValue 50 */
  readonly runs?: number;
}

export interface Dashboard {
  readonly port: number;
  /** The page to open, e.g. `http://127.0.0.1:3000/`. */
  readonly url: string;
  /** True when every request must carry DASHBOARD_TOKEN. */
  readonly tokenRequired: boolean;
  close(): Promise<void>;
}

/** Most runs one request reads: each is two Redis reads, and the page should stay quick. */
const MAX_RUNS = 500;

async function recentReports(runs: RunStore, config: Config, limit: number): Promise<RunReport[]> {
  const reports: RunReport[] = [];
  for (const id of await runs.latest(limit)) {
    const run = await runs.get(id);
    if (run) reports.push(buildReport(run, await runs.codeCounts(id), config.models));
  }
  return reports;
}

function limitOf(req: Request, fallback: number, max = MAX_RUNS): number {
  const raw = Number(req.query.limit);
  return Number.isInteger(raw) && raw > 0 ? Math.min(raw, max) : fallback;
}

/** Items of a run a JSON page holds (about: HSCAN's count), by default and at most. */
const ITEM_PAGE = 1000;
const MAX_ITEM_PAGE = 10_000;

/** The failed and skipped items a run's page shows: the first MAX_ITEM_ROWS met, read by pages. */
async function firstRows(runs: RunStore, id: string): Promise<[string, ItemOutcome][]> {
  const rows: [string, ItemOutcome][] = [];
  for await (const page of runs.itemPages(id, ITEM_PAGE)) {
    for (const row of page) if (row[1].status === 'failed' || row[1].status === 'skipped') rows.push(row);
    if (rows.length >= MAX_ITEM_ROWS) break;
  }
  return rows.slice(0, MAX_ITEM_ROWS);
}

export async function startDashboard(config: Config, options: DashboardOptions): Promise<Dashboard> {
  const host = options.host ?? '127.0.0.1';
  // before any connection: a refused start must leave nothing open
  checkExposure(host, config.dashboardToken);
  const connection = redisConnection(config);
  const embed = embedQueue(config, connection);
  const reindex = reindexQueue(config, connection);
  const runs = runStore(config, connection);
  const defaultRuns = options.runs ?? 50;

  const board = new ExpressAdapter();
  board.setBasePath('/queues');
  const adapterOptions = { readOnlyMode: options.readOnly ?? false, prefix: `${config.queuePrefix}:` };
  createBullBoard({
    queues: [
      new BullMQAdapter(embed, {
        ...adapterOptions,
        description: 'embed jobs: one or a few API requests of a run each',
      }),
      new BullMQAdapter(reindex, { ...adapterOptions, description: 'reindex requests: one scan each' }),
    ],
    serverAdapter: board,
    options: { uiConfig: { boardTitle: 'mm-ingest', miscLinks: [{ text: 'Runs', url: '/' }] } },
  });

  const app = express();
  app.disable('x-powered-by');
  // the port is known once listening (0: any free port); requests come only after that
  const guard: { check?: ReturnType<typeof dashboardGuard> } = {};
  app.use((req, res, next) => (guard.check ? guard.check(req, res, next) : res.status(503).end()));
  // every answer (run reports, Bull Board's jobs and their errors) without the secrets a
  // stored message may hold, whoever stored it; res.json sends through res.send
  app.use((_req, res, next) => {
    const send = res.send.bind(res);
    res.send = ((body?: unknown) => send(typeof body === 'string' ? redact(body) : body)) as Response['send'];
    next();
  });
  app.use('/queues', board.getRouter() as Router);
  app.get('/', async (req, res) => {
    res.type('html').send(runsPage(await recentReports(runs, config, limitOf(req, defaultRuns)), config.queuePrefix));
  });
  app.get('/runs/:id', async (req, res) => {
    const id = req.params.id ?? '';
    const run = await runs.get(id);
    if (!run) {
      res
        .status(404)
        .type('html')
        .send(notFoundPage(`run ${id} does not exist`));
      return;
    }
    res
      .type('html')
      .send(runPage(buildReport(run, await runs.codeCounts(id), config.models), await firstRows(runs, id)));
  });
  app.get('/api/runs', async (req, res) => {
    res.json(await recentReports(runs, config, limitOf(req, defaultRuns)));
  });
  app.get('/api/runs/:id', async (req, res) => {
    const id = req.params.id ?? '';
    const run = await runs.get(id);
    if (!run) {
      res.status(404).json({ error: `run ${id} does not exist` });
      return;
    }
    const cursor = typeof req.query.cursor === 'string' ? req.query.cursor : '0';
    if (!/^\d+$/.test(cursor)) {
      res
        .status(400)
        .json({ error: `cursor must be the "next" of a previous page (digits), got "${cursor.slice(0, 40)}"` });
      return;
    }
    // one page of the run's items (a Map first: a key named __proto__ stays an item)
    const page = await runs.itemsPage(id, cursor, limitOf(req, ITEM_PAGE, MAX_ITEM_PAGE));
    res.json({
      report: buildReport(run, await runs.codeCounts(id), config.models),
      items: Object.fromEntries(new Map(page.items)),
      next: page.next === '0' ? null : page.next,
    });
  });
  // Express 5 passes a rejected handler here; the message only, never a stack trace
  app.use((err: Error, _req: Request, res: Response, _next: NextFunction) => {
    res.status(500).type('text').send(`error: ${err.message}\n`);
  });

  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(options.port, host, (err?: Error) => (err ? reject(err) : resolve(s)));
  }).catch(async (err: unknown) => {
    await Promise.all([embed.close(), reindex.close()]);
    await connection.quit();
    throw err;
  });
  const port = (server.address() as AddressInfo).port;
  guard.check = dashboardGuard({
    host,
    port,
    token: config.dashboardToken,
    allowedHosts: config.dashboardAllowedHosts,
  });
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return {
    port,
    url: `http://${shownHost}:${port}/`,
    tokenRequired: config.dashboardToken !== undefined,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // an open browser tab keeps a keep-alive connection that would hold close() for minutes
        server.closeAllConnections();
      });
      await Promise.all([embed.close(), reindex.close()]);
      await connection.quit();
    },
  };
}
