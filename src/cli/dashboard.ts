/** `mm-ingest dashboard`: Bull Board and the run reports in a browser, until stopped. */
import { InvalidArgumentError } from 'commander';
import type { Command } from 'commander';
import { loadConfig } from '../config.js';
import { commandRedis } from './connect.js';
import { positiveInt, withConnectionFlags } from './options.js';

/** @see README "Metrics and dashboard" */
export const DEFAULT_DASHBOARD_PORT = 3000;

function port(v: string): number {
  const n = positiveInt('--port')(v);
  if (n > 65_535) throw new InvalidArgumentError(`--port must be at most 65535, got "${v}"`);
  return n;
}

interface DashboardFlags {
  port?: number;
  host?: string;
  readOnly?: boolean;
  [flag: string]: unknown;
}

export function registerDashboardCommand(program: Command): void {
  withConnectionFlags(
    program
      .command('dashboard')
      .description('serve Bull Board (the queues) and the run reports in a browser until stopped')
      .option('--port <n>', `port (default ${DEFAULT_DASHBOARD_PORT}; 0: any free port)`, port)
      .option(
        '--host <host>',
        'interface to listen on (default 127.0.0.1; any other needs DASHBOARD_TOKEN: Bull Board can remove and retry jobs)',
      )
      .option('--read-only', "hide Bull Board's actions (retry, remove, clean, pause)"),
  ).action(async (flags: DashboardFlags) => {
    const config = loadConfig(process.env, flags);
    // a Redis that cannot be reached is said at start in one line (exit 2), not by every page
    (await commandRedis(config)).disconnect();
    // Express and Bull Board are loaded by this command only, not by every command's start-up
    const { startDashboard } = await import('../dashboard/server.js');
    const dashboard = await startDashboard(config, {
      port: flags.port ?? DEFAULT_DASHBOARD_PORT,
      ...(flags.host !== undefined ? { host: flags.host } : {}),
      readOnly: flags.readOnly === true,
    });
    const token = dashboard.tokenRequired
      ? '; DASHBOARD_TOKEN required: open the page once with ?token=TOKEN, or send Authorization: Bearer TOKEN'
      : '';
    process.stdout.write(`dashboard on ${dashboard.url} (queues: ${dashboard.url}queues${token})\n`);
    await new Promise<void>((resolve) => {
      const stop = (): void => void dashboard.close().then(resolve);
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    process.stdout.write('dashboard: stopped\n');
  });
}
