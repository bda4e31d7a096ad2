/**
 * `mm-ingest dashboard` as an operator sees it: a bucket is indexed by real CLI processes,
 * then the dashboard runs as a process and headless Chromium (Debian's, driven by
 * playwright-core) opens its run list, a run's report and Bull Board.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { copyFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { BrowserContext, Page } from 'playwright-core';
import type { RunReport } from '../../src/report.js';
import { RunStore } from '../../src/runs.js';
import { prose } from '../support/corpus.js';
import { runCli, startCli, startPipelineEnv } from '../support/pipeline.js';
import type { BackgroundCli, PipelineEnv } from '../support/pipeline.js';
import { createBucket, putObject } from '../support/s3.js';

const BUCKET = 'dashboard';
const TEXTS = 8;
/** A key that is markup: the pages must show it as text. */
const MARKUP_KEY = 'notes/<b>bold</b>.txt';
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

describe('the dashboard in a browser', () => {
  let env: PipelineEnv;
  let dashboard: BackgroundCli | undefined;
  let browser: BrowserContext | undefined;
  let page: Page;
  let profile: string | undefined;
  let url: string;
  let runId: string;

  beforeAll(async () => {
    env = await startPipelineEnv();
    await createBucket(env.s3client, BUCKET);
    for (let i = 0; i < TEXTS; i++) await putObject(env.s3client, BUCKET, `docs/${i}.txt`, prose(100 + i, 30));
    await putObject(env.s3client, BUCKET, MARKUP_KEY, 'a NUL byte \u0000 makes this binary');

    const worker = startCli(['worker', '--no-reindex'], env.env);
    try {
      await worker.waitFor(/worker ready/);
      const indexed = await runCli(
        [
          'index',
          '--bucket',
          BUCKET,
          '--collection',
          `dash-${env.prefix}`,
          '--model',
          'qwen3-vl-embedding',
          '--dimension',
          '256',
          '--wait',
        ],
        env.env,
      );
      expect(indexed.code).toBe(0);
      runId = /run (\S+): scanning/.exec(indexed.stdout)?.[1] ?? '';
    } finally {
      await worker.stop('SIGTERM');
    }

    const port = await freePort();
    dashboard = startCli(['dashboard', '--port', String(port)], env.env);
    await dashboard.waitFor(/dashboard on /);
    url = `http://127.0.0.1:${port}/`;
    expect(dashboard.output()).toContain(`dashboard on ${url}`);

    profile = await mkdtemp(join(tmpdir(), 'dashboard-chromium-'));
    browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
      headless: true,
    });
    // this machine reaches nothing but itself: Bull Board's web fonts and the like are refused at once
    await browser.route('**/*', (route) => {
      const target = new URL(route.request().url());
      if (target.hostname === '127.0.0.1' || target.protocol === 'data:') return route.continue();
      return route.abort();
    });
    page = browser.pages()[0] ?? (await browser.newPage());
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
    if (dashboard) await dashboard.stop('SIGTERM');
    await env?.close();
  });

  it('lists the run on its front page, with its counts', async () => {
    await page.goto(url);
    const row = page.locator('tr', { hasText: runId });
    await expect(row.count()).resolves.toBe(1);
    const cells = await row.locator('td').allInnerTexts();
    // run, status, started, collection, model, indexed, failed, unchanged, requests, cost
    expect(cells[0]).toBe(runId);
    expect(cells[1]).toBe('finished');
    expect(cells[3]).toBe(`dash-${env.prefix}`);
    expect(cells[5]).toBe(String(TEXTS));
    expect(cells[6]).toBe('0');
    expect(Number(cells[8])).toBe(env.sim.stats().accepted);
    expect(cells[9]).toMatch(/^\$\d+\.\d{4}$/);
  });

  it("opens a run's report from its link, with the skipped object shown as text", async () => {
    await page.goto(url);
    await page.getByRole('link', { name: runId }).click();
    await page.waitForURL(`${url}runs/${runId}`);
    const report = await page.locator('pre').innerText();
    expect(report).toContain(`run ${runId} (finished, incremental)`);
    expect(report).toContain(`scanned ${TEXTS + 1}: ${TEXTS} indexed`);
    const skipped = await page.locator('tbody tr').allInnerTexts();
    expect(skipped).toHaveLength(1);
    expect(skipped[0]).toContain('skipped');
    expect(skipped[0]).toContain(MARKUP_KEY);
    // escaped: the key's markup is text, not a bold element
    await expect(page.locator('td b').count()).resolves.toBe(0);
  });

  it('answers the same runs as JSON, and 404 for a run that does not exist', async () => {
    const res = await fetch(`${url}api/runs`);
    const reports = (await res.json()) as RunReport[];
    expect(reports.map((r) => r.id)).toEqual([runId]);
    expect(reports[0]?.indexed).toBe(TEXTS);
    expect(reports[0]?.skippedByReason).toEqual({ 'binary-content': 1 });
    const missing = await fetch(`${url}runs/no-such-run`);
    expect(missing.status).toBe(404);
    await missing.text();
  });

  it('shows the embed and reindex queues in Bull Board, and a screenshot of it is a PNG', async () => {
    const run = await new RunStore(env.redis, env.prefix).get(runId);
    const jobs = run?.counters.jobsAdded ?? -1;
    await page.goto(`${url}queues`);
    // Bull Board renders in the browser from its API: the sidebar comes first, then the
    // overview's card per queue, which is what is waited for
    const card = page.locator('main li', { hasText: `${env.prefix}:embed` });
    await card.getByText(/\d+ Jobs?$/).waitFor({ timeout: 30_000 });
    await expect(card.innerText()).resolves.toContain(`${jobs} Job${jobs === 1 ? '' : 's'}`);
    const text = await page.locator('body').innerText();
    expect(text).toContain('embed');
    expect(text).toContain(`${env.prefix}:reindex`);
    expect(text).toContain('mm-ingest');

    const shot = join(profile ?? tmpdir(), 'bull-board.png');
    await page.screenshot({ path: shot, fullPage: true });
    const png = await readFile(shot);
    expect(png.length).toBeGreaterThan(1000);
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    // the profile directory goes at the end: DASHBOARD_SCREENSHOT=path keeps a copy to look at
    if (process.env.DASHBOARD_SCREENSHOT) await copyFile(shot, process.env.DASHBOARD_SCREENSHOT);
  });

  it('stops on SIGTERM and exits 0', async () => {
    await browser?.close();
    browser = undefined;
    await expect(dashboard?.stop('SIGTERM')).resolves.toBe(0);
    expect(dashboard?.output()).toMatch(/dashboard: stopped\n$/);
  });
});
