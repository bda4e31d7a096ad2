/* global require, process, module, setTimeout */
/* eslint-disable @typescript-eslint/no-require-imports */
/**
 * The test environment of every file: jest's node environment plus a leak check after the
 * file's last afterAll. Every process a test starts (a CLI worker, MinIO, a Redis server)
 * is a child of the jest worker that runs the file; one still alive once the file is done
 * was left behind, by a test that failed before its cleanup or by a cleanup that forgot it.
 * The check waits a few seconds for children that are exiting, then kills the ones left
 * (so they cannot disturb the next file) and fails the file, naming each with its command.
 *
 * CommonJS because jest loads environments with require.
 */
'use strict';
const { readFileSync, readdirSync } = require('node:fs');
const NodeEnvironment = require('jest-environment-node').TestEnvironment;

const GRACE_MS = 5000;

/** Live (not zombie) children of this process: pid and command line. */
function children() {
  const out = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = rest[0];
    const ppid = Number(rest[1]);
    if (ppid !== process.pid || state === 'Z' || state === 'X') continue;
    try {
      out.push({
        pid: Number(entry),
        cmd: readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ').trim(),
      });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

class LeakCheckingEnvironment extends NodeEnvironment {
  constructor(config, context) {
    super(config, context);
    this.testPath = context.testPath;
    this.before = new Set(children().map((c) => c.pid));
  }

  /** Failed tests, kept so that a leak's error (which makes jest drop the file's results) still names them. */
  handleTestEvent(event) {
    if (event.name === 'test_done' && event.test.errors.length > 0) {
      const names = [];
      for (let t = event.test; t && t.name !== 'ROOT_DESCRIBE_BLOCK'; t = t.parent) names.unshift(t.name);
      const first = event.test.errors[0];
      const err = Array.isArray(first) ? first[0] : first;
      const message = err && typeof err === 'object' && 'message' in err ? String(err.message) : String(err);
      this.failed = [...(this.failed ?? []), `${names.join(' > ')}: ${message.split('\n').slice(0, 3).join(' ')}`];
    }
  }

  async teardown() {
    const deadline = Date.now() + GRACE_MS;
    let left = children().filter((c) => !this.before.has(c.pid));
    while (left.length > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      left = children().filter((c) => !this.before.has(c.pid));
    }
    for (const c of left) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await super.teardown();
    if (left.length > 0) {
      const list = left.map((c) => `  pid ${c.pid}: ${c.cmd.slice(0, 300)}`).join('\n');
      const failed = (this.failed ?? []).map((f) => `  failed: ${f.slice(0, 500)}`).join('\n');
      throw new Error(
        `${this.testPath} left ${left.length} process(es) running after its last afterAll (killed now):\n${list}${failed ? `\nits failed tests (jest drops their results with this error):\n${failed}` : ''}`,
      );
    }
  }
}

module.exports = LeakCheckingEnvironment;
