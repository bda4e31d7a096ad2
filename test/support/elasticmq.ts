/**
 * An ElasticMQ server of a test's own (an SQS-compatible server, resolved from Maven Central
 * by scripts/setup.sh), as a child process on the machine's Java, on a free port, in memory.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.js';

const CLASSPATH = fileURLToPath(new URL('../../.tmp/elasticmq.classpath', import.meta.url));
const START_TIMEOUT_MS = 60_000;

export interface ElasticMq {
  /** `http://127.0.0.1:<port>` */
  readonly endpoint: string;
  output(): string;
  close(): Promise<void>;
}

export async function startElasticMq(): Promise<ElasticMq> {
  if (!existsSync(CLASSPATH))
    throw new Error(`no ElasticMQ classpath at ${CLASSPATH}: run \`npm run setup\` (it resolves ElasticMQ with Maven)`);
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'elasticmq-'));
  const conf = join(dir, 'elasticmq.conf');
  await writeFile(
    conf,
    [
      'include classpath("application.conf")',
      `node-address { protocol = http, host = 127.0.0.1, port = ${port}, context-path = "" }`,
      `rest-sqs { enabled = true, bind-port = ${port}, bind-hostname = "127.0.0.1", sqs-limits = strict }`,
      'rest-stats { enabled = false }',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(
    'java',
    ['-Xmx256m', `-Dconfig.file=${conf}`, '-cp', readFileSync(CLASSPATH, 'utf8').trim(), 'org.elasticmq.server.Main'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!/ElasticMQ server \(.*\) started/.test(out)) {
    if (child.exitCode !== null || child.signalCode !== null) {
      await stop();
      throw new Error(`ElasticMQ exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${out}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`ElasticMQ was not ready within ${START_TIMEOUT_MS} ms:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { endpoint: `http://127.0.0.1:${port}`, output: () => out, close: stop };
}
