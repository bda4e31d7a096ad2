/**
 * Who the dashboard answers. Bull Board can pause queues and remove, retry and add jobs,
 * and the run reports name buckets and keys, so every request passes three checks:
 * - the Host header must be a name the dashboard is known by (its address, localhost,
 *   127.0.0.1, with its port; `DASHBOARD_ALLOWED_HOSTS` adds names). A page of another
 *   site whose name was re-pointed at 127.0.0.1 (DNS rebinding) sends its own name;
 * - a write action (any method but GET, HEAD, OPTIONS) from a page of another site (its
 *   Origin, or `Sec-Fetch-Site: cross-site`) is refused, so a page cannot post to a
 *   dashboard on loopback either;
 * - with a token (`DASHBOARD_TOKEN`, which listening beyond loopback requires), every
 *   request must carry it: `Authorization: Bearer TOKEN`, or the cookie a browser gets by
 *   opening `/?token=TOKEN` once (the address then drops the token).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { hostname, networkInterfaces } from 'node:os';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ConfigError } from '../errors.js';

export interface GuardOptions {
  /** The address the server listens on. */
  readonly host: string;
  readonly port: number;
  readonly token?: string | undefined;
  /** More names, `name` (on the dashboard's port) or `name:port`. */
  readonly allowedHosts?: readonly string[] | undefined;
}

/** The browser's cookie: a hash of the token, so the cookie does not hold the token itself. */
export const COOKIE = 'mm_ingest_dashboard';

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/** 127.0.0.0/8, ::1, localhost: only this machine reaches it. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(h);
}

/** A dashboard beyond loopback without a token is refused before it listens. */
export function checkExposure(host: string, token: string | undefined): void {
  if (token === undefined && !isLoopback(host)) {
    throw new ConfigError(
      'DASHBOARD_TOKEN',
      `is not set, and a dashboard listening on ${host} is reachable beyond this machine: set DASHBOARD_TOKEN (16 characters or more) to require it, or listen on 127.0.0.1`,
    );
  }
}

const withPort = (name: string, port: number): string =>
  `${name.includes(':') && !name.startsWith('[') ? `[${name}]` : name}:${port}`.toLowerCase();

/** Every Host header value the dashboard answers, lowercased. */
export function allowedHostHeaders(o: GuardOptions): Set<string> {
  const names = ['127.0.0.1', 'localhost', '::1'];
  if (WILDCARDS.has(o.host)) {
    // listening everywhere: reached by any of the machine's addresses, or its name
    names.push(hostname());
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) names.push(a.address);
  } else {
    names.push(o.host);
  }
  const out = new Set(names.map((n) => withPort(n, o.port)));
  for (const entry of o.allowedHosts ?? [])
    out.add(/:\d+$/.test(entry) ? entry.toLowerCase() : withPort(entry, o.port));
  // a browser leaves the port out of the Host header when it is the default one
  if (o.port === 80) for (const h of [...out]) if (h.endsWith(':80')) out.add(h.slice(0, -3));
  return out;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();
const sameSecret = (given: string, hash: Buffer): boolean => timingSafeEqual(digest(given), hash);

function cookieValue(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function refuse(res: Response, status: number, text: string): void {
  if (status === 401) res.setHeader('www-authenticate', 'Bearer realm="mm-ingest dashboard"');
  res.status(status).type('text').send(`refused: ${text}\n`);
}

export function dashboardGuard(o: GuardOptions): RequestHandler {
  const hosts = allowedHostHeaders(o);
  const shown = [
    ...new Set(
      [WILDCARDS.has(o.host) ? '127.0.0.1' : o.host, '127.0.0.1', 'localhost'].map((n) => withPort(n, o.port)),
    ),
  ].join(', ');
  const tokenHash = o.token !== undefined ? digest(o.token) : undefined;
  const cookieHash = o.token !== undefined ? digest(`cookie:${o.token}`).toString('hex') : undefined;

  return (req: Request, res: Response, next: NextFunction): void => {
    const host = (req.headers.host ?? '').toLowerCase();
    if (!hosts.has(host))
      return refuse(
        res,
        403,
        `Host "${host}" is not this dashboard's address (${shown}); set DASHBOARD_ALLOWED_HOSTS to add a name`,
      );

    if (!['GET', 'HEAD', 'OPTIONS'].includes(req.method)) {
      const origin = req.headers.origin;
      let originHost: string | undefined;
      try {
        originHost = origin !== undefined ? new URL(origin).host.toLowerCase() : undefined;
      } catch {
        originHost = 'unreadable';
      }
      if ((originHost !== undefined && !hosts.has(originHost)) || req.headers['sec-fetch-site'] === 'cross-site') {
        return refuse(res, 403, `a write action from another site's page (Origin ${origin ?? 'unknown'})`);
      }
    }

    if (tokenHash === undefined || cookieHash === undefined) return next();
    const query = req.query.token;
    if (typeof query === 'string') {
      if (!sameSecret(query, tokenHash)) return refuse(res, 401, 'wrong token');
      const target = new URL(req.originalUrl, 'http://dashboard');
      target.searchParams.delete('token');
      res.setHeader('set-cookie', `${COOKIE}=${cookieHash}; Path=/; HttpOnly; SameSite=Strict`);
      res.redirect(303, `${target.pathname}${target.search}`);
      return;
    }
    const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const cookie = cookieValue(req, COOKIE);
    if (
      (bearer !== undefined && sameSecret(bearer, tokenHash)) ||
      (cookie !== undefined && sameSecret(cookie, digest(cookieHash)))
    )
      return next();
    refuse(
      res,
      401,
      'this dashboard needs its token (DASHBOARD_TOKEN): open /?token=TOKEN once in the browser, or send Authorization: Bearer TOKEN',
    );
  };
}
