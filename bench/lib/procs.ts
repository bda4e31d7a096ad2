/**
 * Child processes of the benchmark and what they cost.
 *
 * `spawnNode` starts `node --import tsx FILE ARGS` (bench code of its own: the S3 servers,
 * the Qdrant stand-in) and collects its output. `spawnCli` starts mm-ingest as users run
 * it: `node bin/mm-ingest.js ARGS`, the compiled CLI in dist/, which the bench builds
 * (`npm run build`) before its first CLI process, so that dist/ is the checkout's code.
 * `BENCH_CLI=tsx` runs `src/cli/run.ts` through tsx instead, as the integration tests do
 * (the benchmark's figures before 2026-12-02 were measured that way: tsx's loader costs
 * each process about 1.5 s of CPU at start-up and a thread of its own). `ProcSampler` reads
 * `/proc/PID/status` (VmHWM, VmRSS) and `/proc/PID/stat` (utime + stime) of a process
 * and of its descendants (tsx's esbuild service) every `intervalMs`, keeping the last
 * values seen, so a process that has exited still reports its peak and its CPU (to
 * within one interval).
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TICKS_PER_SECOND = 100; // getconf CLK_TCK on Linux

export interface NodeProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  output(): string;
  /** When (performance.now()) a line matching `pattern` was first printed, if one was. */
  lineTime(pattern: RegExp): number | undefined;
  /** Resolves once the output matches (rejects if the process exits first or on timeout). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code when the process ends. */
  readonly exited: Promise<number | null>;
  /** Sends a signal (SIGTERM by default) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Every child started here and not yet exited, so a stopped bench leaves none behind. */
const running = new Set<ChildProcess>();

/** SIGTERM to every child still running (each by its own pid). */
export function stopChildren(): void {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
}

/** `node --import tsx FILE ARGS`. */
export function spawnNode(
  file: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  nodeArgs: readonly string[] = [],
  /** The tree `file` is in (another checkout, for a before/after pair). @defaultValue this one */
  cwd = ROOT,
): NodeProcess {
  return spawnProcess(file, args, env, [...nodeArgs, '--import', 'tsx'], cwd);
}

/** `node NODE_ARGS FILE ARGS` (FILE is JavaScript, or TypeScript with `--import tsx` among NODE_ARGS). */
function spawnProcess(
  file: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  nodeArgs: readonly string[],
  cwd = ROOT,
): NodeProcess {
  const child = spawn(process.execPath, [...nodeArgs, file, ...args], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let out = '';
  const lines: { t: number; line: string }[] = [];
  let partial = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out = (out + d).slice(-200_000);
    const parts = (partial + d).split('\n');
    partial = parts.pop() ?? '';
    const t = performance.now();
    if (lines.length < 1000) for (const line of parts) lines.push({ t, line });
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (out = (out + d).slice(-200_000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  if (child.pid === undefined) throw new Error(`could not start ${file}`);
  const pid = child.pid;
  return {
    child,
    pid,
    output: () => out,
    lineTime: (pattern) => lines.find((l) => pattern.test(l.line))?.t,
    exited,
    async waitFor(pattern, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = out.match(pattern);
        if (m) return m;
        if (child.exitCode !== null)
          throw new Error(
            `${file} ${args[0] ?? ''} exited (${child.exitCode}) before ${String(pattern)}:\n${out.slice(-3000)}`,
          );
        if (Date.now() > deadline)
          throw new Error(
            `timed out waiting for ${String(pattern)} from ${file} ${args[0] ?? ''}:\n${out.slice(-3000)}`,
          );
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** How the bench runs mm-ingest: `compiled` (bin/mm-ingest.js over dist/, as installed) or `tsx` (BENCH_CLI=tsx). */
export function cliMode(): 'compiled' | 'tsx' {
  const mode = process.env.BENCH_CLI ?? 'compiled';
  if (mode !== 'compiled' && mode !== 'tsx') throw new Error(`BENCH_CLI is compiled or tsx, not ${mode}`);
  return mode;
}

let built = false;

/** Builds dist/ from the checkout (`npm run build`), once per bench process. */
export function buildCli(): void {
  if (built) return;
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  built = true;
}

/** `mm-ingest ARGS` as a child process: the compiled CLI (built first), or the sources through tsx. */
export function spawnCli(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  nodeArgs: readonly string[] = [],
): NodeProcess {
  if (cliMode() === 'tsx') return spawnNode('src/cli/run.ts', args, env, nodeArgs);
  buildCli();
  return spawnProcess('bin/mm-ingest.js', args, env, nodeArgs);
}

/** CPU seconds of the whole machine since boot (from /proc/stat): busy (not idle or iowait) and total. */
export function machineCpu(): { busy: number; total: number } {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: (total - idle) / TICKS_PER_SECOND, total: total / TICKS_PER_SECOND };
}

/** Pids of this process's children whose command line contains `needle`. */
export function childPids(needle: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || readStat(pid)?.ppid !== process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle)) out.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

interface ProcReading {
  /** VmHWM of the process itself, bytes. */
  hwm: number;
  /** VmRSS about once a second: [seconds since tracked, bytes]. */
  rss: [number, number][];
  /** utime + stime of the process and its descendants, seconds. */
  cpu: number;
}

function readStat(pid: number): { ppid: number; cpu: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name is in parentheses and may hold spaces: split after the last ')'
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15
    return { ppid: Number(fields[1]), cpu: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND };
  } catch {
    return undefined;
  }
}

function readMemory(pid: number): { hwm: number; rss: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
    return { hwm: kb('VmHWM'), rss: kb('VmRSS') };
  } catch {
    return undefined;
  }
}

/** Samples processes (and their descendants) until stopped. */
export class ProcSampler {
  private readonly roots = new Map<number, ProcReading>();
  /** CPU last seen per descendant pid, by root. */
  private readonly descendants = new Map<number, Map<number, number>>();
  private readonly trackedAt = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly intervalMs = 100) {}

  track(pid: number): void {
    this.roots.set(pid, { hwm: 0, cpu: 0, rss: [] });
    this.trackedAt.set(pid, performance.now());
    this.descendants.set(pid, new Map());
    this.sample();
    this.timer ??= setInterval(() => this.sample(), this.intervalMs);
  }

  sample(): void {
    const parents = new Map<number, number>();
    const cpus = new Map<number, number>();
    for (const name of readdirSync('/proc')) {
      const pid = Number(name);
      if (!Number.isInteger(pid)) continue;
      const s = readStat(pid);
      if (!s) continue;
      parents.set(pid, s.ppid);
      cpus.set(pid, s.cpu);
    }
    for (const [root, reading] of this.roots) {
      const own = cpus.get(root);
      if (own === undefined) continue; // exited: keep the last reading
      const mem = readMemory(root);
      if (mem) {
        reading.hwm = Math.max(reading.hwm, mem.hwm);
        const t = (performance.now() - (this.trackedAt.get(root) ?? 0)) / 1000;
        const lastT = reading.rss[reading.rss.length - 1]?.[0] ?? -1;
        if (t - lastT >= 1) reading.rss.push([Math.round(t * 10) / 10, mem.rss]);
      }
      const seen = this.descendants.get(root) ?? new Map<number, number>();
      for (const [pid, cpu] of cpus) {
        let p = parents.get(pid);
        while (p !== undefined && p > 1 && p !== root) p = parents.get(p);
        if (p === root) seen.set(pid, cpu);
      }
      reading.cpu = own + [...seen.values()].reduce((a, b) => a + b, 0);
    }
  }

  reading(pid: number): ProcReading {
    const r = this.roots.get(pid);
    if (!r) throw new Error(`pid ${pid} is not tracked`);
    return { ...r, rss: [...r.rss] };
  }

  /** CPU seconds of every tracked process and its descendants. */
  totalCpu(): number {
    return [...this.roots.values()].reduce((a, r) => a + r.cpu, 0);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
