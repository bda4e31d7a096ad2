/** The Qdrant check: the collection's vectors, distance and dimension against the run's. */
import { VECTOR_DISTANCE } from '../collection-layout.js';
import { CheckTimeout, bounded, message, unanswered, row } from './rows.js';
import type { CheckRow, DoctorClients, DoctorTarget } from './rows.js';

export async function checkQdrant(vectors: DoctorClients['vectors'], t: DoctorTarget): Promise<CheckRow[]> {
  let layout;
  try {
    layout = await bounded(vectors.describeCollection(t.collection), t.timeoutMs);
  } catch (err) {
    const status = (err as { status?: unknown }).status;
    const action =
      status === 401 || status === 403 ? 'check QDRANT_API_KEY' : 'start Qdrant, or fix QDRANT_URL / --qdrant-url';
    // the store's message names the operation and collection: the row says where instead
    const why =
      err instanceof CheckTimeout
        ? err
        : new Error(message(err).replace(/^Qdrant \S+ on collection "[^"]*" failed: /, ''));
    return [
      row('qdrant', 'fail', unanswered(t.qdrantUrl, why), action),
      row('collection', 'skip', 'not checked: Qdrant did not answer'),
    ];
  }
  const rows = [row('qdrant', 'ok', `answers at ${t.qdrantUrl}`)];
  const makes = `${t.model.name} at dimension ${t.dimension} makes ${t.dimension}-dim vectors`;
  const name = `"${t.collection}"`;
  if (layout === undefined) {
    rows.push(
      row(
        'collection',
        'ok',
        `${name} does not exist yet: index creates it (${t.dimension}-dim, ${VECTOR_DISTANCE}, one unnamed vector)`,
        '',
        { exists: false },
      ),
    );
  } else if (layout.vectors === 'named') {
    rows.push(
      row(
        'collection',
        'fail',
        `${name} has named vectors (${layout.names.join(', ')}); this tool writes one unnamed vector a point`,
        'use another --collection',
        { exists: true },
      ),
    );
  } else if (layout.vectors === 'none') {
    rows.push(
      row(
        'collection',
        'fail',
        `${name} has no dense vector; this tool writes one unnamed vector a point`,
        'use another --collection',
        { exists: true },
      ),
    );
  } else if (layout.size !== t.dimension) {
    const takes = t.model.dimensions.includes(layout.size)
      ? `--dimension ${layout.size} (${t.model.name} takes it), `
      : '';
    rows.push(
      row(
        'collection',
        'fail',
        `${name} holds ${layout.size}-dim vectors; ${makes}`,
        `use ${takes}another --collection, or --mode rebuild`,
        { exists: true, size: layout.size, distance: layout.distance },
      ),
    );
  } else if (layout.sparse !== undefined) {
    rows.push(
      row(
        'collection',
        'fail',
        `${name} has sparse vectors (${layout.sparse.join(', ')}); this tool writes one unnamed dense vector a point`,
        'use another --collection',
        { exists: true, size: layout.size, distance: layout.distance },
      ),
    );
  } else if (layout.distance !== VECTOR_DISTANCE) {
    rows.push(
      row(
        'collection',
        'fail',
        `${name} holds ${layout.size}-dim vectors with ${layout.distance} distance; this tool writes ${VECTOR_DISTANCE} vectors (index refuses the collection)`,
        `use another --collection for ${VECTOR_DISTANCE}`,
        { exists: true, size: layout.size, distance: layout.distance },
      ),
    );
  } else {
    rows.push(
      row(
        'collection',
        'ok',
        `${name} holds ${layout.size}-dim ${layout.distance} vectors, as ${t.model.name} makes`,
        '',
        { exists: true, size: layout.size, distance: layout.distance },
      ),
    );
  }
  return rows;
}
