/**
 * A vector's JSON text, kept from the answer it was parsed from, so that writing it to
 * Qdrant does not format its 2,560 numbers again.
 *
 * A worker receives each vector as JSON (the embedding API's answer) and sends it on as
 * JSON (Qdrant's upsert). Formatting doubles is the dearer half of that round trip: for a
 * job of 20 short texts at 2,560 dimensions, JSON.stringify of the points took about 8 ms,
 * and 20 ms through the Qdrant client, which serializes with a replacer function that is
 * called once per number. The text the answer carried is the same array (JSON.parse made
 * the vector from exactly those characters), so Qdrant, which parses each number into a
 * double and stores it as a float32, stores the same values from either text.
 *
 * The text is found by `embeddingTexts` with a scan that steps over strings and skips each
 * vector's body with one `indexOf(']')`, and kept only when it agrees with the parsed vector
 * (its first and last numbers). Vectors are never changed after they are parsed; one copied
 * or made elsewhere has no text and is formatted as before.
 */

const texts = new WeakMap<readonly number[], string>();

/** Remembers `text` as the JSON of `vector` (the caller parsed `vector` from it). */
export function rememberJson(vector: readonly number[], text: string): void {
  texts.set(vector, text);
}

/** The vector as JSON: the text it was parsed from, else formatted now. */
export function vectorJson(vector: readonly number[]): string {
  return texts.get(vector) ?? JSON.stringify(vector);
}

/**
 * A vector's text agrees with the parsed vector: an array whose first and last numbers are
 * the vector's (its length was checked on the parsed vector; this guards the scan).
 */
export function agrees(text: string, vector: readonly number[]): boolean {
  if (text.charCodeAt(0) !== 0x5b || text.charCodeAt(text.length - 1) !== 0x5d) return false;
  const first = text.indexOf(',');
  const last = text.lastIndexOf(',');
  if (vector.length <= 1)
    return (
      first < 0 && (vector.length === 0 ? text.slice(1, -1).trim() === '' : Number(text.slice(1, -1)) === vector[0])
    );
  if (first < 0) return false;
  return Number(text.slice(1, first)) === vector[0] && Number(text.slice(last + 1, -1)) === vector[vector.length - 1];
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

/** A forward-only reader of JSON text that has already parsed (JSON.parse accepted it). */
class Reader {
  at = 0;
  constructor(readonly s: string) {}
  ws(): void {
    while (WS.has(this.s.charCodeAt(this.at))) this.at++;
  }
  peek(): number {
    this.ws();
    return this.s.charCodeAt(this.at);
  }
  /** A string's value (only keys are read this way: short). */
  string(): string {
    const start = this.at;
    this.skipString();
    return JSON.parse(this.s.slice(start, this.at)) as string;
  }
  skipString(): void {
    let j = this.at + 1;
    for (;;) {
      const q = this.s.indexOf('"', j);
      if (q < 0) throw new Error('unterminated string');
      let backslashes = 0;
      while (this.s.charCodeAt(q - 1 - backslashes) === 0x5c) backslashes++;
      j = q + 1;
      if (backslashes % 2 === 0) break;
    }
    this.at = j;
  }
  /** Skips any value. */
  skip(): void {
    const c = this.peek();
    if (c === 0x22) this.skipString();
    else if (c === 0x7b) this.object(() => this.skip());
    else if (c === 0x5b) this.array(() => this.skip());
    else {
      // a number or a literal: up to the next delimiter
      while (this.at < this.s.length) {
        const d = this.s.charCodeAt(this.at);
        if (d === 0x2c || d === 0x7d || d === 0x5d || WS.has(d)) break;
        this.at++;
      }
    }
  }
  /** Reads an object, calling `member` with each key once the reader is at its value. */
  object(member: (key: string) => void): void {
    this.ws();
    this.at++; // {
    if (this.peek() === 0x7d) {
      this.at++;
      return;
    }
    for (;;) {
      this.ws();
      const key = this.string();
      this.ws();
      this.at++; // :
      member(key);
      const c = this.peek();
      this.at++; // , or }
      if (c === 0x7d) return;
    }
  }
  array(element: (index: number) => void): void {
    this.ws();
    this.at++; // [
    if (this.peek() === 0x5d) {
      this.at++;
      return;
    }
    for (let i = 0; ; i++) {
      element(i);
      const c = this.peek();
      this.at++; // , or ]
      if (c === 0x5d) return;
    }
  }
  /** An array of numbers, whole, as text: it holds no bracket, so it ends at the first `]`. */
  numbers(): string {
    this.ws();
    const start = this.at;
    const end = this.s.indexOf(']', start);
    if (this.s.charCodeAt(start) !== 0x5b || end < 0) throw new Error('not an array');
    this.at = end + 1;
    return this.s.slice(start, this.at);
  }
}

/**
 * The text of each `output.embeddings[k].embedding` of an answer whose embeddings JSON.parse
 * read as arrays of numbers only (embedder.ts checks that first: an array of numbers holds
 * no bracket, so it ends at its first `]`), by k, the entry's position in the list;
 * undefined for an entry with no array there, or for all when the text cannot be read (the
 * caller then formats them). Repeated keys count last, as in JSON.parse.
 */
export function embeddingTexts(answer: string): (string | undefined)[] | undefined {
  const r = new Reader(answer);
  let found: (string | undefined)[] | undefined;
  try {
    r.object((key) => {
      if (key !== 'output' || r.peek() !== 0x7b) return r.skip();
      r.object((inner) => {
        if (inner !== 'embeddings' || r.peek() !== 0x5b) return r.skip();
        const list: (string | undefined)[] = [];
        r.array((k) => {
          if (r.peek() !== 0x7b) {
            list[k] = undefined;
            return r.skip();
          }
          let text: string | undefined;
          r.object((field) => {
            if (field !== 'embedding') return r.skip();
            if (r.peek() !== 0x5b) {
              text = undefined;
              return r.skip();
            }
            text = r.numbers();
          });
          list[k] = text;
        });
        found = list;
      });
    });
  } catch {
    return undefined;
  }
  return found;
}
