// Qdrant filters: parsed once per request (so a malformed filter is a 400 even on an empty
// collection), then evaluated per point with the semantics of Qdrant's query_checker.rs:
// `should: []` matches nothing, a missing key fails every match/range condition, leaf arrays
// match if any element does, `match.except` never matches null.

import { formatError, noUntaggedVariant, notImplemented } from './errors.js';
import { asArray, asUint, isObject, optional, type JsonObject } from './decode.js';
import { idKey, parsePointId } from './ids.js';
import { getValues, parseJsonPath, type PathItem } from './json-path.js';

type Match =
  | { kind: 'value'; value: string | number | boolean }
  | { kind: 'any' | 'except'; values: ReadonlyArray<string | number> }
  | { kind: 'text'; text: string };

interface Bounds<T> {
  gt?: T;
  gte?: T;
  lt?: T;
  lte?: T;
}

interface FieldCondition {
  kind: 'field';
  key: PathItem[];
  match?: Match;
  range?: { numeric: Bounds<number> } | { datetime: Bounds<number> };
  valuesCount?: Bounds<number>;
  isEmpty?: boolean;
  isNull?: boolean;
}

type Condition =
  | FieldCondition
  | { kind: 'is_empty' | 'is_null'; key: PathItem[] }
  | { kind: 'has_id'; ids: Set<string> }
  | { kind: 'has_vector'; name: string }
  | { kind: 'nested'; key: PathItem[]; filter: Filter }
  | { kind: 'filter'; filter: Filter };

export interface Filter {
  must?: Condition[] | undefined;
  should?: Condition[] | undefined;
  mustNot?: Condition[] | undefined;
  minShould?: { conditions: Condition[]; minCount: number };
}

const FILTER_KEYS = new Set(['must', 'should', 'must_not', 'min_should']);

export function parseFilter(raw: unknown): Filter {
  if (!isObject(raw)) throw noUntaggedVariant('Condition');
  const unknownKey = Object.keys(raw).find((k) => !FILTER_KEYS.has(k));
  if (unknownKey !== undefined) {
    throw formatError(
      `unknown field \`${unknownKey}\`, expected one of \`should\`, \`min_should\`, \`must\`, \`must_not\``,
    );
  }
  const list = (field: string): Condition[] | undefined => {
    const value = optional(raw, field);
    if (value === undefined) return undefined;
    // A single condition is accepted in place of a list.
    return (Array.isArray(value) ? value : [value]).map(parseCondition);
  };
  const filter: Filter = { must: list('must'), should: list('should'), mustNot: list('must_not') };
  const minShould = optional(raw, 'min_should');
  if (minShould !== undefined) {
    if (!isObject(minShould)) throw noUntaggedVariant('MinShould');
    filter.minShould = {
      conditions: asArray(minShould.conditions).map(parseCondition),
      minCount: asUint(minShould.min_count, 'min_should.min_count', 1),
    };
  }
  return filter;
}

function parseCondition(raw: unknown): Condition {
  if (!isObject(raw)) throw noUntaggedVariant('Condition');
  if (typeof raw.key === 'string') return parseFieldCondition(raw);
  if (isObject(raw.is_empty) && typeof raw.is_empty.key === 'string') {
    return { kind: 'is_empty', key: parseJsonPath(raw.is_empty.key) };
  }
  if (isObject(raw.is_null) && typeof raw.is_null.key === 'string') {
    return { kind: 'is_null', key: parseJsonPath(raw.is_null.key) };
  }
  if (Array.isArray(raw.has_id)) {
    return { kind: 'has_id', ids: new Set(raw.has_id.map((id) => idKey(parsePointId(id)))) };
  }
  if (typeof raw.has_vector === 'string') return { kind: 'has_vector', name: raw.has_vector };
  if (isObject(raw.nested) && typeof raw.nested.key === 'string') {
    return {
      kind: 'nested',
      key: [...parseJsonPath(raw.nested.key), { wildcard: true }],
      filter: parseFilter(raw.nested.filter),
    };
  }
  if (Object.keys(raw).every((k) => FILTER_KEYS.has(k))) return { kind: 'filter', filter: parseFilter(raw) };
  throw noUntaggedVariant('Condition');
}

function parseFieldCondition(raw: JsonObject): FieldCondition {
  const condition: FieldCondition = { kind: 'field', key: parseJsonPath(raw.key as string) };
  for (const geo of ['geo_bounding_box', 'geo_radius', 'geo_polygon']) {
    if (optional(raw, geo) !== undefined) throw notImplemented(`the \`${geo}\` filter condition`);
  }
  const match = optional(raw, 'match');
  if (match !== undefined) condition.match = parseMatch(match);
  const range = optional(raw, 'range');
  if (range !== undefined) condition.range = parseRange(range);
  const count = optional(raw, 'values_count');
  if (count !== undefined) condition.valuesCount = parseBounds(count, (v) => asUint(v, 'values_count', 0));
  const isEmpty = optional(raw, 'is_empty');
  if (typeof isEmpty === 'boolean') condition.isEmpty = isEmpty;
  const isNull = optional(raw, 'is_null');
  if (typeof isNull === 'boolean') condition.isNull = isNull;
  return condition;
}

function parseMatch(raw: unknown): Match {
  if (!isObject(raw)) throw noUntaggedVariant('Match');
  const value = raw.value;
  if (
    typeof value === 'string' ||
    typeof value === 'boolean' ||
    (typeof value === 'number' && Number.isInteger(value))
  ) {
    return { kind: 'value', value };
  }
  for (const kind of ['any', 'except'] as const) {
    const list = raw[kind];
    if (!Array.isArray(list)) continue;
    const strings = list.every((x) => typeof x === 'string');
    const integers = list.every((x) => typeof x === 'number' && Number.isInteger(x));
    if (!strings && !integers) throw noUntaggedVariant('Match');
    return { kind, values: list as Array<string | number> };
  }
  if (typeof raw.text === 'string') return { kind: 'text', text: raw.text };
  if ('text_any' in raw || 'phrase' in raw || 'prefix' in raw) throw notImplemented('full-text match conditions');
  throw noUntaggedVariant('Match');
}

function parseBounds<T>(raw: unknown, read: (v: unknown) => T): Bounds<T> {
  if (!isObject(raw)) throw noUntaggedVariant('RangeInterface');
  const bounds: Bounds<T> = {};
  for (const op of ['gt', 'gte', 'lt', 'lte'] as const) {
    const v = optional(raw, op);
    if (v !== undefined) bounds[op] = read(v);
  }
  return bounds;
}

function parseRange(raw: unknown): NonNullable<FieldCondition['range']> {
  if (!isObject(raw)) throw noUntaggedVariant('RangeInterface');
  const values = Object.values(raw).filter((v) => v !== null);
  if (values.every((v) => typeof v === 'number')) {
    return { numeric: parseBounds(raw, (v) => v as number) };
  }
  if (values.every((v) => typeof v === 'string' && !Number.isNaN(Date.parse(v)))) {
    return { datetime: parseBounds(raw, (v) => Date.parse(v as string)) };
  }
  throw noUntaggedVariant('RangeInterface');
}

// ---- evaluation ----------------------------------------------------------------------------

export interface FilterTarget {
  payload: Record<string, unknown>;
  /** `idKey` of the point; undefined inside `nested`, where Qdrant ignores `has_id`. */
  key?: string;
}

export function matchesFilter(filter: Filter | undefined, target: FilterTarget): boolean {
  if (filter === undefined) return true;
  const check = (c: Condition): boolean => matchesCondition(c, target);
  if (filter.should !== undefined && !filter.should.some(check)) return false;
  if (filter.minShould !== undefined) {
    const hits = filter.minShould.conditions.filter(check).length;
    if (hits < filter.minShould.minCount) return false;
  }
  if (filter.must !== undefined && !filter.must.every(check)) return false;
  if (filter.mustNot !== undefined && filter.mustNot.some(check)) return false;
  return true;
}

function matchesCondition(c: Condition, target: FilterTarget): boolean {
  switch (c.kind) {
    case 'filter':
      return matchesFilter(c.filter, target);
    case 'has_id':
      return target.key !== undefined && c.ids.has(target.key);
    case 'has_vector':
      // The stand-in stores exactly one, unnamed, vector per point.
      return target.key !== undefined && c.name === '';
    case 'is_empty':
      return isEmptyValues(getValues(target.payload, c.key));
    case 'is_null':
      return getValues(target.payload, c.key).some((v) => v === null);
    case 'nested':
      return getValues(target.payload, c.key).some(
        (element) => isObject(element) && matchesFilter(c.filter, { payload: element }),
      );
    case 'field':
      return matchesField(c, getValues(target.payload, c.key));
  }
}

function isEmptyValues(values: unknown[]): boolean {
  return values.every((v) => v === null || (Array.isArray(v) && v.length === 0));
}

function matchesField(c: FieldCondition, values: unknown[]): boolean {
  if (c.isEmpty !== undefined && isEmptyValues(values) === c.isEmpty) return true;
  if (c.isNull !== undefined && values.some((v) => v === null) === c.isNull) return true;
  if (values.length === 0) return false;
  if (c.valuesCount !== undefined) {
    const bounds = c.valuesCount;
    return values.some((v) => inBounds(Array.isArray(v) ? v.length : v === null ? 0 : 1, bounds));
  }
  // A leaf array matches when any of its elements does; arrays inside it are not flattened.
  return values.some((v) => (Array.isArray(v) ? v.some((x) => matchesScalar(c, x)) : matchesScalar(c, v)));
}

function matchesScalar(c: FieldCondition, v: unknown): boolean {
  if (c.match !== undefined && matchesMatch(c.match, v)) return true;
  if (c.range !== undefined) {
    if ('numeric' in c.range) return typeof v === 'number' && inBounds(v, c.range.numeric);
    const time = typeof v === 'string' ? Date.parse(v) : Number.NaN;
    return !Number.isNaN(time) && inBounds(time, c.range.datetime);
  }
  return false;
}

function matchesMatch(m: Match, v: unknown): boolean {
  switch (m.kind) {
    case 'value':
      return typeof m.value === 'number'
        ? typeof v === 'number' && Number.isInteger(v) && v === m.value
        : v === m.value;
    case 'text':
      return typeof v === 'string' && v.includes(m.text);
    case 'any':
      return (typeof v === 'string' || (typeof v === 'number' && Number.isInteger(v))) && m.values.includes(v);
    case 'except':
      if (v === null) return false;
      if (typeof v === 'string' && typeof m.values[0] !== 'number') return !m.values.includes(v);
      if (typeof v === 'number' && typeof m.values[0] === 'number') return !m.values.includes(v);
      return true;
  }
}

function inBounds(x: number, b: Bounds<number>): boolean {
  return (
    (b.gt === undefined || x > b.gt) &&
    (b.gte === undefined || x >= b.gte) &&
    (b.lt === undefined || x < b.lt) &&
    (b.lte === undefined || x <= b.lte)
  );
}
