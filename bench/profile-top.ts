/**
 * `node --import tsx bench/profile-top.ts DIR [N]`: the N functions (default 10) with the
 * most self time over every V8 CPU profile (`*.cpuprofile`, from `--cpu-prof`) in DIR, with
 * their share of all samples; the bucket-scale scenario writes such profiles with `--profile DIR`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT } from './lib/procs.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const [dir = '.', n = '10'] = process.argv.slice(2);
const self = new Map<string, number>();
let total = 0;
for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
  const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((node) => [node.id, node]));
  p.samples.forEach((id, i) => {
    const node = byId.get(id);
    if (!node) return;
    const dt = p.timeDeltas[i] ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url
      ? `${url.startsWith('file://') ? relative(ROOT, new URL(url).pathname) : url}:${lineNumber + 1}`
      : '';
    const name = `${functionName || '(anonymous)'}${where ? ` ${where}` : ''}`;
    self.set(name, (self.get(name) ?? 0) + dt);
    total += dt;
  });
}
const idle = ['(idle)', '(program)', '(garbage collector)'];
const busy = [...self].filter(([k]) => !idle.includes(k)).reduce((a, [, v]) => a + v, 0);
process.stdout.write(
  `${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (not idle, program or GC: ${((self.get('(garbage collector)') ?? 0) / 1e6).toFixed(1)} s GC)\n`,
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
