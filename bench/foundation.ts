/**
 * Foundation figures: tokenizer throughput and the planner's packing density on
 * text-only mixes. Run: `node --import tsx bench/foundation.ts`.
 */
import { performance } from 'node:perf_hooks';
import { resolveModel } from '../src/models.js';
import { planRequests } from '../src/planner.js';
import type { PreparedInput } from '../src/prepared-input.js';
import { countTokens, qwenTokens } from '../src/tokens.js';

const WORDS = 'the quick brown fox jumps over a lazy dog while engineers index buckets of documents overnight'.split(
  ' ',
);
function english(seed: number, words: number): string {
  let x = seed >>> 0;
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out.push(WORDS[x % WORDS.length]!);
  }
  return out.join(' ');
}
const cjk = (n: number): string => '向量检索模型把文本图像视频映射到同一空间。'.repeat(n);

countTokens('warm up the tokenizer');
for (const [name, text] of [
  ['English', english(1, 400_000)],
  ['Chinese', cjk(40_000)],
] as const) {
  const t0 = performance.now();
  const tokens = countTokens(text);
  const ms = performance.now() - t0;
  const mb = Buffer.byteLength(text) / 1e6;
  console.log(
    `tokenizer ${name}: ${mb.toFixed(2)} MB, ${tokens} tokens in ${ms.toFixed(0)} ms = ${(mb / (ms / 1000)).toFixed(2)} MB/s, ${Math.round(tokens / (ms / 1000))} tokens/s`,
  );
}

let seed = 7;
const rnd = (): number => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
const texts: PreparedInput[] = Array.from({ length: 5000 }, (_, i) => {
  const text = english(i + 1, 5 + Math.floor(rnd() * rnd() * 1500));
  return { kind: 'text', source: `t${i}`, text, tokens: qwenTokens.count(text) };
});
for (const name of ['qwen3-vl-embedding', 'tongyi-embedding-vision-plus']) {
  const model = resolveModel(name);
  const t0 = performance.now();
  const plan = planRequests(texts, { model, dimension: model.defaultDimension }, qwenTokens);
  const ms = performance.now() - t0;
  const inputs = plan.requests.reduce((s, r) => s + r.inputs.length, 0);
  const tokens = plan.requests.reduce((s, r) => s + r.textTokens, 0);
  const lower =
    model.textLimitScope === 'per-request'
      ? Math.ceil(tokens / model.textTokenLimit)
      : Math.ceil(inputs / (model.maxElements ?? inputs));
  console.log(
    `planner ${name}: ${texts.length} texts -> ${inputs} inputs in ${plan.requests.length} requests (lower bound ${lower}); ` +
      `${(inputs / plan.requests.length).toFixed(2)} inputs/request (cap ${model.maxElements ?? 'none'}), ` +
      `${(tokens / plan.requests.length).toFixed(0)} tokens/request (cap ${model.textLimitScope === 'per-request' ? model.textTokenLimit : 'per text'}); planned in ${ms.toFixed(0)} ms`,
  );
}
