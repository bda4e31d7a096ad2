/**
 * An in-memory record manager for LangChain.js's `index()`: @langchain/core 1.x exports
 * only the abstract `RecordManager` (the SQL-backed ones live in @langchain/community),
 * so this is the minimal implementation of its interface, as a user would write for a
 * one-off load. Keys are the hashed document ids; group ids are the documents' sources.
 */
import { RecordManager } from '@langchain/core/indexing';
import type { ListKeyOptions, UpdateOptions } from '@langchain/core/indexing';

interface Entry {
  updatedAt: number;
  groupId: string | null;
}

export class InMemoryRecordManager extends RecordManager {
  override lc_namespace = ['bench', 'recordmanagers', 'memory'];
  private readonly records = new Map<string, Entry>();

  async createSchema(): Promise<void> {}

  async getTime(): Promise<number> {
    return Date.now();
  }

  async update(keys: string[], options: UpdateOptions = {}): Promise<void> {
    const now = await this.getTime();
    if (options.timeAtLeast !== undefined && now < options.timeAtLeast)
      throw new Error(`time ${now} is before timeAtLeast ${options.timeAtLeast}`);
    if (options.groupIds && options.groupIds.length !== keys.length)
      throw new Error('keys and groupIds differ in length');
    keys.forEach((key, i) => this.records.set(key, { updatedAt: now, groupId: options.groupIds?.[i] ?? null }));
  }

  async exists(keys: string[]): Promise<boolean[]> {
    return keys.map((k) => this.records.has(k));
  }

  async listKeys(options: ListKeyOptions = {}): Promise<string[]> {
    const groups = options.groupIds ? new Set(options.groupIds) : undefined;
    const out: string[] = [];
    for (const [key, e] of this.records) {
      if (options.before !== undefined && e.updatedAt >= options.before) continue;
      if (options.after !== undefined && e.updatedAt <= options.after) continue;
      if (groups && !groups.has(e.groupId)) continue;
      out.push(key);
      if (options.limit !== undefined && out.length >= options.limit) break;
    }
    return out;
  }

  async deleteKeys(keys: string[]): Promise<void> {
    for (const k of keys) this.records.delete(k);
  }
}
