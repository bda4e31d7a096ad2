// Qdrant's JSON path for payload keys: `a.b`, `a[].b` (every element), `a[2]`, `"quoted.key"`.
// As in Qdrant 1.19, a plain `a.b` does not step into arrays; `a[].b` does. A leaf array is
// returned as one value, and conditions then match if any of its elements matches.

import { formatError } from './errors.js';

export type PathItem = { key: string } | { index: number } | { wildcard: true };

export function parseJsonPath(path: string): PathItem[] {
  const items: PathItem[] = [];
  let rest = path;
  let expectKey = true;
  while (rest.length > 0) {
    if (expectKey) {
      const quoted = /^"([^"]*)"/.exec(rest);
      const plain = /^[^.[\]"]+/.exec(rest);
      const key = quoted ? quoted[1] : plain?.[0];
      if (key === undefined || key === '') throw formatError(`Invalid JSON path: ${path}`);
      items.push({ key });
      rest = rest.slice((quoted ?? plain)?.[0].length ?? 0);
      expectKey = false;
      continue;
    }
    const bracket = /^\[(\d*)\]/.exec(rest);
    if (bracket) {
      items.push(bracket[1] === '' ? { wildcard: true } : { index: Number(bracket[1]) });
      rest = rest.slice(bracket[0].length);
    } else if (rest.startsWith('.') && rest.length > 1) {
      rest = rest.slice(1);
      expectKey = true;
    } else {
      throw formatError(`Invalid JSON path: ${path}`);
    }
  }
  if (items.length === 0) throw formatError(`Invalid JSON path: ${path}`);
  return items;
}

/** Every value the path focuses on (none when the path leads nowhere). */
export function getValues(root: unknown, path: readonly PathItem[]): unknown[] {
  const out: unknown[] = [];
  const walk = (value: unknown, depth: number): void => {
    if (value === undefined) return;
    const item = path[depth];
    if (item === undefined) {
      out.push(value);
      return;
    }
    if ('key' in item) {
      if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
        walk((value as Record<string, unknown>)[item.key], depth + 1);
      }
    } else if (Array.isArray(value)) {
      if ('index' in item) walk(value[item.index], depth + 1);
      else for (const element of value) walk(element, depth + 1);
    }
  };
  walk(root, 0);
  return out;
}

/** Sets a value at a key-only path, creating objects on the way (used for payload selectors). */
export function setAtPath(target: Record<string, unknown>, path: readonly PathItem[], value: unknown): void {
  let node = target;
  path.forEach((item, i) => {
    if (!('key' in item)) return;
    if (i === path.length - 1) {
      node[item.key] = value;
      return;
    }
    const next = node[item.key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[item.key] = {};
    node = node[item.key] as Record<string, unknown>;
  });
}

/** Removes the value at a key-only path, if present. */
export function deleteAtPath(target: Record<string, unknown>, path: readonly PathItem[]): void {
  let node: unknown = target;
  path.forEach((item, i) => {
    if (!('key' in item) || typeof node !== 'object' || node === null || Array.isArray(node)) return;
    const record = node as Record<string, unknown>;
    if (i === path.length - 1) delete record[item.key];
    else node = record[item.key];
  });
}
