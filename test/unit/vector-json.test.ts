// The vectors' JSON texts kept from an answer (src/vector-json.ts): the scan finds exactly
// each entry's embedding array, whatever the layout, and a text is only used for its vector.
import { describe, expect, it } from '@jest/globals';
import { agrees, embeddingTexts, rememberJson, vectorJson } from '../../src/vector-json.js';

describe('embeddingTexts', () => {
  it("finds each entry's embedding text in a compact answer, equal to its vector's JSON", () => {
    const vectors = [
      [0.25, -0.5, 1e-7],
      [3, 4, -0],
    ];
    const answer = JSON.stringify({
      output: { embeddings: vectors.map((embedding, index) => ({ index, embedding, type: 'text' })) },
      usage: { input_tokens: 4 },
      request_id: 'r-1',
    });
    expect(embeddingTexts(answer)).toEqual(vectors.map((v) => JSON.stringify(v)));
  });

  it('reads a spaced answer with keys in another order, strings that look like embeddings, and repeated keys', () => {
    // the request id holds a quote, a bracket and the key's name; an entry's "type" holds an
    // embedding-like text; the second entry repeats "embedding" (JSON.parse keeps the last)
    const answer = `{
      "request_id": "a\\"]\\\\\\"embedding\\":[9]",
      "output" : {
        "note": {"embedding": [7, 7]},
        "embeddings" : [
          { "type" : "x\\"embedding\\":[8]", "embedding" : [ 0.1000000000000000055511151231257827 , -2E-3 ] , "index" : 1 },
          { "index":0, "embedding":[5,5], "embedding":
            [1.5,2.5] }
        ]
      },
      "usage": {"input_tokens": 2}
    }`;
    const parsed = JSON.parse(answer) as { output: { embeddings: { embedding: number[] }[] } };
    const texts = embeddingTexts(answer);
    expect(texts).toEqual(['[ 0.1000000000000000055511151231257827 , -2E-3 ]', '[1.5,2.5]']);
    texts?.forEach((t, k) => expect(JSON.parse(t ?? 'null')).toEqual(parsed.output.embeddings[k]?.embedding));
  });

  it('gives no text for an entry without an array, and none at all for an answer it cannot read', () => {
    expect(embeddingTexts('{"output":{"embeddings":[{"index":0},{"index":1,"embedding":[1,2]}]}}')).toEqual([
      undefined,
      '[1,2]',
    ]);
    expect(embeddingTexts('{"output":{"embeddings":[{"index":0,"embedding":[1,2')).toBeUndefined();
    expect(embeddingTexts('{"output":{}}')).toBeUndefined();
  });
});

describe('agrees and vectorJson', () => {
  it("agrees only with an array text that starts and ends with the vector's numbers", () => {
    const v = [0.5, 0.25, -1];
    expect(agrees('[0.5,0.25,-1]', v)).toBe(true);
    expect(agrees('[ 0.50 , 0.25 , -1.0 ]', v)).toBe(true);
    expect(agrees('[0.5,0.25]', v)).toBe(false);
    expect(agrees('[0.5,0.25,-1,2]', v)).toBe(false);
    expect(agrees('[0.4,0.25,-1]', v)).toBe(false);
    expect(agrees('[0.5,0.25,1]', v)).toBe(false);
    expect(agrees('0.5,0.25,-1', v)).toBe(false);
    expect(agrees('[7]', [7])).toBe(true);
    expect(agrees('[]', [])).toBe(true);
  });

  it('gives the remembered text for that very vector, and formats any other, a copy included', () => {
    const v = [0.1, 0.2];
    rememberJson(v, '[0.1000000000000000055511151231257827,0.2]');
    expect(vectorJson(v)).toBe('[0.1000000000000000055511151231257827,0.2]');
    expect(vectorJson([...v])).toBe('[0.1,0.2]');
    expect(vectorJson([1, 2.5])).toBe('[1,2.5]');
  });
});
