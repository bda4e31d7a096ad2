// Payload endpoints: set (merge), overwrite, delete keys, clear. Like Qdrant, naming a point
// that does not exist fails the whole operation with 404 when the caller waits for it; without
// `wait=true` Qdrant only acknowledges the write, so the stand-in does the same (and applies
// nothing, as the real operation would fail in the background).

import { asArray, asObject, asString, optional, required, type JsonObject } from './decode.js';
import { notFound, notImplemented, type QdrantHttpError } from './errors.js';
import { parseWait, updateResult } from './http.js';
import { idKey } from './ids.js';
import { deleteAtPath, parseJsonPath } from './json-path.js';
import { parseSelector } from './point-ops.js';
import { pointsMatching } from './point-routes.js';
import { param, type RequestContext, type Route } from './routes.js';
import type { StoredPoint } from './store.js';

type Edit = (point: StoredPoint) => void;

function payloadWrite(parse: (body: JsonObject) => { selectorBody: JsonObject; edit: Edit }, enumName?: string) {
  return (ctx: RequestContext): unknown => {
    const body = asObject(ctx.body);
    const { selectorBody, edit } = parse(body);
    const selector = parseSelector(selectorBody, enumName);
    const wait = parseWait(ctx.query);
    const c = ctx.store.get(param(ctx, 'collection_name'));
    let targets: StoredPoint[];
    let missing: QdrantHttpError | undefined;
    if (selector.ids !== undefined) {
      targets = [];
      for (const id of selector.ids) {
        const p = c.points.get(idKey(id));
        if (p === undefined) missing ??= notFound(`No point with id ${id} found`);
        else targets.push(p);
      }
    } else {
      targets = pointsMatching(c, selector.filter);
    }
    const version = ctx.store.nextOperationId(c);
    if (missing !== undefined) {
      if (wait) throw missing;
      return updateResult(version, wait);
    }
    for (const p of targets) {
      edit(p);
      p.version = version;
    }
    return updateResult(version, wait);
  };
}

function newPayload(body: JsonObject): JsonObject {
  if (optional(body, 'key') !== undefined) throw notImplemented('setting payload under a nested `key`');
  return asObject(required(body, 'payload'));
}

const setPayload = payloadWrite((body) => {
  const payload = newPayload(body);
  return { selectorBody: body, edit: (p) => Object.assign(p.payload, structuredClone(payload)) };
});

const overwritePayload = payloadWrite((body) => {
  const payload = newPayload(body);
  return { selectorBody: body, edit: (p) => (p.payload = structuredClone(payload)) };
});

const deletePayloadKeys = payloadWrite((body) => {
  const paths = asArray(required(body, 'keys')).map((k) => parseJsonPath(asString(k)));
  return { selectorBody: body, edit: (p) => paths.forEach((path) => deleteAtPath(p.payload, path)) };
});

const clearPayload = payloadWrite((body) => ({ selectorBody: body, edit: (p) => (p.payload = {}) }), 'PointsSelector');

export const payloadRoutes: Route[] = [
  { method: 'POST', pattern: '/collections/{collection_name}/points/payload', body: true, handle: setPayload },
  { method: 'PUT', pattern: '/collections/{collection_name}/points/payload', body: true, handle: overwritePayload },
  {
    method: 'POST',
    pattern: '/collections/{collection_name}/points/payload/delete',
    body: true,
    handle: deletePayloadKeys,
  },
  { method: 'POST', pattern: '/collections/{collection_name}/points/payload/clear', body: true, handle: clearPayload },
];
