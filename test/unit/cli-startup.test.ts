/**
 * What every command's start-up loads: the CLI's module graph (src/cli/main.ts, as
 * `mm-ingest worker` or `index` loads it before it runs) holds the packages the pipeline
 * needs, and none that only one command or one kind of object needs (Express and Bull Board
 * for `dashboard`, the SQS client for `listen`, sharp for images), which each cost the
 * worker CPU and memory at start-up. Read in a child process of its own from the CommonJS
 * module cache, where Node also keeps the CommonJS packages an ES module imports (an
 * ES-only package shows by the CommonJS files it loads).
 */
import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const PROBE = `
import { createRequire } from 'node:module';
await import('./src/cli/main.ts');
const files = Object.keys(createRequire(process.cwd() + '/').cache);
const names = new Set(files.map((f) => /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(f)?.[1]).filter(Boolean));
process.stdout.write(JSON.stringify([...names]));
`;

function packagesAtStartup(): Set<string> {
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', PROBE], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
  });
  return new Set(JSON.parse(out) as string[]);
}

describe("the CLI's start-up", () => {
  it('loads the pipeline packages and none of those only the dashboard, listen or images need', () => {
    const loaded = packagesAtStartup();
    // what the worker and the producer use: present, so the probe sees the graph at all
    for (const name of ['bullmq', 'ioredis', '@aws-sdk/client-s3', 'commander']) expect(loaded).toContain(name);
    for (const name of ['express', '@bull-board/api', '@bull-board/express', '@aws-sdk/client-sqs', 'sharp'])
      expect(loaded).not.toContain(name);
    // sharp's own files are ES modules; its native binding (@img/sharp-PLATFORM) is CommonJS
    expect([...loaded].filter((name) => name.startsWith('@img/sharp'))).toEqual([]);
  });
});
