/**
 * `node --import tsx bench/profile-top.ts DIR [N] [--owners] [--from S] [--thread K]`: the N functions
 * (default 10) with the most self time over every V8 CPU profile (`*.cpuprofile`, from
 * `--cpu-prof`) in DIR, with their share of the busy time; the bucket-scale scenario writes
 * such profiles with `--profile DIR`.
 *
 * `--owners` sums the time by owner instead: each sample goes to the nearest frame up its
 * stack that is in a package (`node_modules/NAME`) or in mm-ingest's own code (its file), so
 * that Node's internals (a socket write, a JSON.parse inlined into its caller) count for the
 * code that asked for them; a sample with no such frame is Node's (module loading, GC...).
 * `--from S` leaves out each profile's first S seconds (start-up: module loading, the tokenizer).
 * `--thread K` reads only the profiles of thread K (`--cpu-prof` names a process's threads
 * `PID.K.`: 0 is the main thread; tsx's loader and mm-ingest's send thread are others).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT } from './lib/procs.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const flag = (name: string): boolean => args.includes(name);
const option = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const thread = option('--thread');
const fromS = Number(option('--from') ?? 0);
const positional = args.filter((a, i) => !a.startsWith('--') && args[i - 1] !== '--thread' && args[i - 1] !== '--from');
const [dir = '.', n = '10'] = positional;
const byOwner = flag('--owners');

const fileOf = (url: string): string => (url.startsWith('file://') ? relative(ROOT, new URL(url).pathname) : url);

/** The owner of a frame: a package's name, or mm-ingest's own file; undefined for Node's own code. */
function ownerOf(url: string): string | undefined {
  if (!url.startsWith('file://')) return undefined;
  const file = fileOf(url);
  const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file);
  if (m) return m[1];
  return file;
}

const self = new Map<string, number>();
let total = 0;
const IDLE = ['(idle)', '(program)', '(garbage collector)'];
const files = readdirSync(dir).filter(
  (f) =>
    f.endsWith('.cpuprofile') &&
    (thread === undefined || new RegExp(`\\.\\d+\\.${thread}\\.\\d+\\.cpuprofile$`).test(f)),
);
for (const file of files) {
  const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of p.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
  const ownerCache = new Map<number, string>();
  const owner = (id: number): string => {
    const cached = ownerCache.get(id);
    if (cached !== undefined) return cached;
    const node = byId.get(id);
    const name = node?.callFrame.functionName ?? '';
    let found: string;
    if (IDLE.includes(name)) found = name;
    else {
      const own = node ? ownerOf(node.callFrame.url) : undefined;
      const up = parent.get(id);
      found = own ?? (up !== undefined && byId.get(up)?.callFrame.functionName !== '(root)' ? owner(up) : '(node)');
    }
    ownerCache.set(id, found);
    return found;
  };
  let at = 0;
  p.samples.forEach((id, i) => {
    const node = byId.get(id);
    const dt = p.timeDeltas[i] ?? 0;
    at += dt;
    if (!node || at < fromS * 1e6) return;
    let name: string;
    if (byOwner) name = owner(id);
    else {
      const { functionName, url, lineNumber } = node.callFrame;
      const where = url ? `${fileOf(url)}:${lineNumber + 1}` : '';
      name = `${functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    }
    self.set(name, (self.get(name) ?? 0) + dt);
    total += dt;
  });
}
const busy = [...self].filter(([k]) => !IDLE.includes(k)).reduce((a, [, v]) => a + v, 0);
process.stdout.write(
  `${files.length} profiles, ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (not idle, program or GC: ${((self.get('(garbage collector)') ?? 0) / 1e6).toFixed(1)} s GC)\n`,
);
// shares of the time the processes were busy (GC included)
const busyAndGc = busy + (self.get('(garbage collector)') ?? 0);
for (const [name, us] of [...self]
  .filter(([k]) => k !== '(idle)' && k !== '(program)')
  .sort((a, b) => b[1] - a[1])
  .slice(0, Number(n))) {
  process.stdout.write(
    `${((us / busyAndGc) * 100).toFixed(1).padStart(5)}% ${(us / 1e6).toFixed(2).padStart(7)} s  ${name}\n`,
  );
}
