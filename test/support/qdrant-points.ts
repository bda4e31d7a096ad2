/** Every point of a collection, with vectors and payloads, page by page (tests compare them). */
import type { QdrantClient } from '@qdrant/js-client-rest';

export interface Point {
  id: string;
  vector: number[];
  payload: Record<string, unknown>;
}

export async function allPoints(qdrant: QdrantClient, collection: string): Promise<Point[]> {
  const points: Point[] = [];
  let offset: string | number | undefined;
  do {
    const page = await qdrant.scroll(collection, {
      limit: 256,
      with_payload: true,
      with_vector: true,
      ...(offset !== undefined ? { offset } : {}),
    });
    for (const p of page.points)
      points.push({ id: String(p.id), vector: p.vector as number[], payload: p.payload ?? {} });
    const next = page.next_page_offset;
    offset = typeof next === 'string' || typeof next === 'number' ? next : undefined;
  } while (offset !== undefined);
  return points;
}
