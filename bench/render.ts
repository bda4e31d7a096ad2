/**
 * Writes bench/results.md again from bench/results.json (`--quick`: the results-quick
 * files) and prints the summary table, without running anything:
 * `node --import tsx bench/render.ts [--quick]`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './lib/procs.js';
import { summaryText, writeResults } from './report.js';
import type { Results } from './report.js';

const base = process.argv.includes('--quick') ? 'results-quick' : 'results';
const results = JSON.parse(readFileSync(join(ROOT, 'bench', `${base}.json`), 'utf8')) as Results;
writeResults(results);
process.stdout.write(`${summaryText(results)}\n`);
