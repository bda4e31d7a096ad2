// The route table's shape, shared by the route modules and the server.

import type { Reply } from './http.js';
import type { Store } from './store.js';

export interface RequestContext {
  store: Store;
  params: Record<string, string>;
  query: URLSearchParams;
  /** Parsed JSON body; only set for routes declared with `body: true`. */
  body: unknown;
}

export interface Route {
  method: 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  /** Path with `{param}` segments, also the key under which `stats()` counts requests. */
  pattern: string;
  body?: boolean;
  /** Returns the `result` of the Qdrant envelope. */
  handle?: (ctx: RequestContext) => unknown;
  /** For the few endpoints answered without the envelope (`/`, health checks). */
  raw?: (ctx: RequestContext) => Reply;
}

/** Matches a path against a pattern, returning the decoded parameters. */
export function matchPattern(pattern: string, pathname: string): Record<string, string> | undefined {
  const want = pattern.split('/');
  const got = pathname.split('/');
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i += 1) {
    const w = want[i] ?? '';
    const g = got[i] ?? '';
    if (w.startsWith('{') && w.endsWith('}')) {
      if (g === '') return undefined;
      try {
        params[w.slice(1, -1)] = decodeURIComponent(g);
      } catch {
        return undefined;
      }
    } else if (w !== g) {
      return undefined;
    }
  }
  return params;
}

export function param(ctx: RequestContext, name: string): string {
  const value = ctx.params[name];
  if (value === undefined) throw new Error(`route parameter ${name} missing`);
  return value;
}
