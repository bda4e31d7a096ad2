/**
 * The dashboard's own pages, rendered on the server as plain HTML. Every value from Redis
 * (keys, reasons, provider messages, names) goes through `esc`: object keys come from
 * whoever writes to the bucket, so they are untrusted text.
 */
import { formatReport } from '../report.js';
import type { RunReport } from '../report.js';
import type { ItemOutcome } from '../runs.js';

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function esc(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
}

const n = (x: number): string => x.toLocaleString('en-US');
export const cost = (usd: number): string => (Number.isNaN(usd) ? '?' : `$${usd.toFixed(4)}`);
const runHref = (id: string): string => `/runs/${encodeURIComponent(id)}`;

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #1d2430; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
nav { margin: 0 0 16px; } nav a { margin-right: 16px; }
table { border-collapse: collapse; } th, td { padding: 4px 10px; border-bottom: 1px solid #dde2ea; text-align: left; vertical-align: top; }
th { background: #f2f4f8; } table.runs td { white-space: nowrap; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f8fa; padding: 12px; overflow-x: auto; }
.failed { color: #b42318; } .finished { color: #067647; } .muted { color: #667085; }`;

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>${STYLE}</style></head>
<body><nav><a href="/">Runs</a><a href="/queues">Queues (Bull Board)</a><a href="/api/runs">JSON</a></nav>
${body}
</body></html>
`;
}

const statusClass = (r: RunReport): string =>
  r.failed > 0 || r.status === 'scan failed' ? 'failed' : r.status === 'finished' ? 'finished' : '';

export function runsPage(reports: readonly RunReport[], queuePrefix: string): string {
  const rows = reports.map(
    (r) => `<tr>
<td><a href="${esc(runHref(r.id))}">${esc(r.id)}</a></td><td class="${statusClass(r)}">${esc(r.status)}</td><td>${esc(r.startedAt)}</td>
<td>${esc(r.collection)}</td><td>${esc(r.model)}</td>
<td class="num">${n(r.indexed)}</td><td class="num">${n(r.failed)}</td><td class="num">${n(r.unchanged)}</td>
<td class="num">${n(r.requests)}</td><td class="num">${esc(cost(r.costUsd))}</td></tr>`,
  );
  const table = reports.length
    ? `<table class="runs"><thead><tr><th>run</th><th>status</th><th>started</th><th>collection</th><th>model</th><th>indexed</th><th>failed</th><th>unchanged</th><th>requests</th><th>cost</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table>`
    : '<p class="muted">no runs yet</p>';
  return page(
    'mm-ingest runs',
    `<h1>Runs</h1><p class="muted">queue prefix ${esc(queuePrefix)}, newest first</p>\n${table}`,
  );
}

/** Rows shown on a run's page; the rest are counted (the JSON API has them all). */
export const MAX_ITEM_ROWS = 1000;

/** A run's page: its report, and the first failed and skipped items met (`rows`, read by pages). */
export function runPage(report: RunReport, rows: readonly [string, ItemOutcome][]): string {
  const listed = [...rows];
  // failures first: they are what the page is opened for
  listed.sort(([ka, a], [kb, b]) => (a.status === b.status ? ka.localeCompare(kb) : a.status === 'failed' ? -1 : 1));
  // the totals are the run's counts: the rows are at most MAX_ITEM_ROWS of them
  const total = [...Object.values(report.failuresByCode), ...Object.values(report.skippedByReason)].reduce(
    (sum, c) => sum + c,
    0,
  );
  const tableRows = listed
    .slice(0, MAX_ITEM_ROWS)
    .map(
      ([key, o]) =>
        `<tr><td class="${o.status === 'failed' ? 'failed' : ''}">${esc(o.status)}</td><td>${esc(o.code)}</td><td>${esc(key)}</td><td>${esc(o.reason)}</td></tr>`,
    );
  const more =
    total > tableRows.length
      ? `<p class="muted">${n(total - tableRows.length)} more in <a href="/api/runs/${esc(encodeURIComponent(report.id))}">the JSON</a> (a page at a time: follow its <code>next</code> with <code>?cursor=</code>)</p>`
      : '';
  const table = listed.length
    ? `<table><thead><tr><th>status</th><th>code</th><th>key</th><th>reason</th></tr></thead><tbody>${tableRows.join('\n')}</tbody></table>${more}`
    : '<p class="muted">none: every object was indexed or unchanged</p>';
  return page(
    `run ${report.id}`,
    `<h1>Run ${esc(report.id)}</h1>
<pre>${esc(formatReport(report))}</pre>
<h2>Failed and skipped objects (${n(total)})</h2>
${table}`,
  );
}

export function notFoundPage(what: string): string {
  return page('not found', `<h1>Not found</h1><p>${esc(what)}</p>`);
}
