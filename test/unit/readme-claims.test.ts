/**
 * The index of the README's claims and the tests that show them (besides the "Bad input and
 * what it gets" table, which names its tests itself). Each row quotes the claim as the README
 * words it and names a test by its file and title; this file checks that the README still
 * says it (so a changed claim brings its row up to date) and that the named test is still
 * there (so a renamed or deleted test does not leave a claim unshown while the index says
 * otherwise). The claims listed at the end are the ones no test shows yet.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from '@jest/globals';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const flat = (text: string): string => text.replace(/\s+/g, ' ');
const README = flat(readFileSync(`${ROOT}README.md`, 'utf8'));

interface Claim {
  /** The README's words (whitespace aside). */
  readonly says: string;
  /** `file: test title` (the title as written in the source, `%s` placeholders included). */
  readonly shownBy: readonly (readonly [file: string, title: string])[];
}

const CLAIMS: readonly Claim[] = [
  {
    says: 'once the last page is counted the run is marked `listed` and its listing is never listed again',
    shownBy: [
      [
        'test/integration/run-phases.test.ts',
        'killed in the prune, resumes there without listing again: every job it queued is counted, and it ends with all of them done',
      ],
    ],
  },
  {
    says: 'A page is known counted without a record of each page',
    shownBy: [
      [
        'test/integration/run-bookkeeping.test.ts',
        "keeps no record per page: the run's records after 2,000 pages are as large as after 2, and a page listed again counts nothing",
      ],
    ],
  },
  {
    says: 'running `retry-failed` again for the same run (or with no `--run`, the latest run being the interrupted one) finishes that run instead of starting another',
    shownBy: [
      [
        'test/integration/retry-resume.test.ts',
        'is reported interrupted, and retry-failed run again finishes its run: every failure queued once, every job counted',
      ],
    ],
  },
  {
    says: 'one whose embedding failed keeps its old points',
    shownBy: [
      ['test/integration/readme-claims.test.ts', 'keeps the old points of an object whose new version the API refuses'],
    ],
  },
  {
    says: 'An interrupted or failed scan never prunes',
    shownBy: [
      [
        'test/integration/readme-claims.test.ts',
        'prunes nothing when the --prune scan fails part-way (the listing dies after its first page)',
      ],
      [
        'test/integration/incremental.test.ts',
        'deletes nothing when a --prune run is killed in the middle of its scan, and prunes once the scan is resumed and completes',
      ],
    ],
  },
  {
    says: 'points outside the prefix are never touched; objects left out by globs or size filters still exist and are kept',
    shownBy: [
      [
        'test/integration/readme-claims.test.ts',
        'prunes an object deleted under the prefix, and keeps points outside the prefix and of existing objects the globs leave out',
      ],
    ],
  },
  {
    says: 'The first rebuild of a name that is a plain collection deletes that collection just before creating the alias',
    shownBy: [
      [
        'test/integration/readme-claims-queue.test.ts',
        'makes a plain collection an alias at its first rebuild, from a reindex job with mode rebuild',
      ],
    ],
  },
  {
    says: 'An object indexed only partly (a crash between chunks) is redone.',
    shownBy: [
      [
        'test/integration/readme-claims-queue.test.ts',
        'redoes an object indexed only partly, and deletes its stale chunks only after the new ones are written',
      ],
    ],
  },
  {
    says: 'only then are chunks beyond the new chunk count deleted, so the object is never without points because of our own update',
    shownBy: [
      [
        'test/integration/readme-claims-queue.test.ts',
        'redoes an object indexed only partly, and deletes its stale chunks only after the new ones are written',
      ],
    ],
  },
  {
    says: "the producer looks up the page's chunk-0 point ids in one request",
    shownBy: [
      [
        'test/integration/readme-claims-queue.test.ts',
        'looks up an unchanged listing page in one Qdrant request, whatever its size up to 1,000',
      ],
    ],
  },
  {
    says: 'Fatal errors** (401 InvalidApiKey, 403, Arrearage, ModelNotFound, a 429 or 403 saying the free quota is exceeded, 429s without a break for `QUOTA_PAUSE_AFTER_MS`) pause the queue for every worker',
    shownBy: [
      [
        'test/integration/readme-claims-queue.test.ts',
        'pauses the queue on %i %s with the reason in one line, and finishes the run once resumed',
      ],
      [
        'test/integration/reliability.test.ts',
        'pauses on a wrong API key without using any job attempt, and completes after resume with the right key',
      ],
      [
        'test/integration/paid-once.test.ts',
        "pauses the run with the provider's reason when the free quota is gone, and finishes it after resume",
      ],
      [
        'test/integration/paid-once.test.ts',
        'pauses a run whose requests meet 429s without a break for QUOTA_PAUSE_AFTER_MS',
      ],
    ],
  },
  {
    says: '| `prefix` | string | only keys under it |',
    shownBy: [
      [
        'test/integration/readme-claims-queue.test.ts',
        'gives every reindex job field the effect the README says, and refuses keys outside 1..10,000 by name',
      ],
    ],
  },
  {
    says: '| `keys` | string[] (1..10,000) |',
    shownBy: [
      ['test/unit/reindex-job.test.ts', 'takes %i keys'],
      ['test/unit/reindex-job.test.ts', 'refuses %i keys, naming the field'],
      [
        'test/integration/readme-claims-queue.test.ts',
        'gives every reindex job field the effect the README says, and refuses keys outside 1..10,000 by name',
      ],
    ],
  },
  {
    says: '| `mode` | `incremental` (default), `full`, `rebuild` | as above |',
    shownBy: [
      [
        'test/integration/readme-claims-queue.test.ts',
        'gives every reindex job field the effect the README says, and refuses keys outside 1..10,000 by name',
      ],
      [
        'test/integration/readme-claims-queue.test.ts',
        'makes a plain collection an alias at its first rebuild, from a reindex job with mode rebuild',
      ],
    ],
  },
  {
    says: '| `fps` | number, 0..1 | video frame sampling passed to the API |',
    shownBy: [
      [
        'test/integration/readme-claims-queue.test.ts',
        'gives every reindex job field the effect the README says, and refuses keys outside 1..10,000 by name',
      ],
    ],
  },
  {
    says: '| `instruct` | string | task description passed to the API |',
    shownBy: [
      [
        'test/integration/readme-claims-queue.test.ts',
        'gives every reindex job field the effect the README says, and refuses keys outside 1..10,000 by name',
      ],
    ],
  },
  {
    says: '| `groupImages` | string | `folder` or `pattern:REGEX`, as `--group-images` |',
    shownBy: [
      [
        'test/integration/readme-claims-queue.test.ts',
        'gives every reindex job field the effect the README says, and refuses keys outside 1..10,000 by name',
      ],
    ],
  },
  {
    says: '| `fuseSidecar` | string | text extensions, as `--fuse-sidecar` |',
    shownBy: [
      [
        'test/integration/readme-claims-queue.test.ts',
        'gives every reindex job field the effect the README says, and refuses keys outside 1..10,000 by name',
      ],
    ],
  },
  {
    says: '| `prune` | boolean | as above |',
    shownBy: [
      [
        'test/integration/readme-claims-queue.test.ts',
        'gives every reindex job field the effect the README says, and refuses keys outside 1..10,000 by name',
      ],
    ],
  },
  {
    says: 'so a decompression bomb is refused',
    shownBy: [
      [
        'test/unit/fixup-bounds.test.ts',
        'refuses a 144-megapixel JPEG of half a megabyte, naming its size and the bound',
      ],
      [
        'test/unit/fixup-bounds.test.ts',
        'refuses a PNG whose header claims 20,000 x 20,000 pixels without decoding it',
      ],
      ['test/unit/fixup-bounds.test.ts', 'decodes an image of exactly 100 megapixels'],
    ],
  },
  {
    says: 'an image that needs a fix-up is skipped there (`needs-fixup`)',
    shownBy: [
      [
        'test/integration/media-urls.test.ts',
        'in URL mode skips an image that needs a fix-up as needs-fixup, and sends the others as they are',
      ],
    ],
  },
  {
    says: 'are skipped at scan (`unreachable-url`, naming the endpoint)',
    shownBy: [
      [
        'test/integration/media-urls.test.ts',
        'indexes texts and inline images and skips the video as unreachable-url, naming the endpoint',
      ],
    ],
  },
  {
    says: 'Not available with `--key` lists (a unit needs the listing of its members)',
    shownBy: [
      [
        'test/integration/readme-claims-queue.test.ts',
        'gives every reindex job field the effect the README says, and refuses keys outside 1..10,000 by name',
      ],
    ],
  },
  {
    says: "Completed jobs are kept for an hour (at most 1,000: the run's counters hold what each job did), failed ones until cleared.",
    shownBy: [
      [
        'test/integration/readme-claims-queue.test.ts',
        'gives every reindex job field the effect the README says, and refuses keys outside 1..10,000 by name',
      ],
    ],
  },
];

/** Claims no test shows yet, quoted as the README words them. */
const NOT_SHOWN: readonly string[] = [
  // no test sets it and counts the fetches a job makes at once
  '| `FETCH_CONCURRENCY` | `8` | objects fetched at once inside a job |',
  // no test reads a presigned URL's lifetime (X-Amz-Expires) as sent
  '| `PRESIGN_SECONDS` | `3600` | lifetime of presigned URLs',
];

describe("the README's claims and the tests that show them", () => {
  it.each(CLAIMS)('"$says"', (claim) => {
    expect(README).toContain(flat(claim.says));
    for (const [file, title] of claim.shownBy) {
      const source = readFileSync(`${ROOT}${file}`, 'utf8');
      expect(source).toContain(title);
    }
  });

  it('lists as unshown only claims the README still makes', () => {
    for (const says of NOT_SHOWN) expect(README).toContain(flat(says));
  });
});
