/**
 * How a collection stores its vectors, and whether that fits this tool: one unnamed dense
 * vector of the run's dimension, compared by cosine (named or sparse vectors, another
 * distance or size are refused, naming the collection, before a run queues anything).
 */
import type { Schemas } from '@qdrant/js-client-rest';

import { ConfigError } from './errors.js';
import { isRecord } from './qdrant-errors.js';

/** The distance of every collection this tool creates. */
export const VECTOR_DISTANCE = 'Cosine';

/**
 * How a collection stores its vectors, as far as this tool cares: one unnamed dense
 * vector (what it creates and writes), named vectors, or no dense vector at all.
 */
export type CollectionLayout =
  | {
      readonly vectors: 'unnamed';
      readonly size: number;
      readonly distance: string;
      /** Names of sparse vectors beside it, if any. */ readonly sparse?: readonly string[];
    }
  | { readonly vectors: 'named'; readonly names: readonly string[] }
  | { readonly vectors: 'none' };

export function layoutOf(info: Schemas['CollectionInfo']): CollectionLayout {
  const vectors = info.config.params.vectors;
  if (isRecord(vectors) && typeof vectors.size === 'number') {
    const sparse = info.config.params.sparse_vectors;
    const sparseNames = isRecord(sparse) ? Object.keys(sparse) : [];
    return {
      vectors: 'unnamed',
      size: vectors.size,
      distance: String(vectors.distance),
      ...(sparseNames.length > 0 ? { sparse: sparseNames } : {}),
    };
  }
  const names = isRecord(vectors) ? Object.keys(vectors) : [];
  return names.length > 0 ? { vectors: 'named', names } : { vectors: 'none' };
}

/**
 * The size of the collection's one unnamed vector, or a ConfigError naming what makes the
 * collection unfit: checked before a run queues anything, so nothing is paid for vectors
 * that could not be written as meant (named or sparse vectors), or that would be compared
 * by another measure than the one they were made for (another distance).
 */
export function vectorSize(name: string, info: Schemas['CollectionInfo']): number {
  const layout = layoutOf(info);
  if (layout.vectors !== 'unnamed') {
    const has = layout.vectors === 'named' ? `named vectors (${layout.names.join(', ')})` : 'no dense vector';
    throw new ConfigError(
      'collection',
      `"${name}" has ${has}; this tool writes one unnamed vector per point (use another --collection)`,
    );
  }
  if (layout.sparse !== undefined) {
    throw new ConfigError(
      'collection',
      `"${name}" has sparse vectors (${layout.sparse.join(', ')}); this tool writes one unnamed dense vector per point and nothing else (use another --collection)`,
    );
  }
  if (layout.distance !== VECTOR_DISTANCE) {
    throw new ConfigError(
      'collection',
      `"${name}" compares vectors by ${layout.distance} distance; this tool writes ${VECTOR_DISTANCE} vectors and needs a ${VECTOR_DISTANCE} collection (use another --collection)`,
    );
  }
  return layout.size;
}

export function checkDimension(name: string, size: number, dimension: number): void {
  if (size !== dimension) {
    throw new ConfigError(
      'collection',
      `"${name}" holds ${size}-dimensional vectors; this run makes ${dimension}-dimensional ones (use another collection, or a rebuild)`,
    );
  }
}
