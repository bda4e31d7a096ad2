/** The API check: one one-word embedding with the key, and what it cost. */
import { EmbeddingApiError } from '../errors.js';
import type { Embedder } from '../embedder.js';
import { estimateCost } from '../models.js';
import { requestParameters } from '../request-body.js';
import { CheckTimeout, bounded, message, unanswered, row } from './rows.js';
import type { CheckRow, DoctorTarget } from './rows.js';

/** The one word the API check embeds. */
export const PROBE_WORD = 'ping';

/** Dollars with two significant digits and no exponent: $0.0000001, $0.012, $12. */
export function formatUsd(usd: number): string {
  if (usd === 0) return '$0';
  const decimals = Math.max(2, 1 - Math.floor(Math.log10(usd)));
  return `$${usd
    .toFixed(decimals)
    .replace(/(\.\d*?[1-9])0+$/, '$1')
    .replace(/\.0+$/, '')}`;
}

function apiAction(err: EmbeddingApiError, t: DoctorTarget): string {
  if (err.status === 0) return 'check DASHSCOPE_BASE_URL / --base-url and the network';
  if (err.code === 'InvalidApiKey' || err.status === 401) {
    return 'check DASHSCOPE_API_KEY; keys belong to one region (Beijing https://dashscope.aliyuncs.com, Singapore https://dashscope-intl.aliyuncs.com): match DASHSCOPE_BASE_URL';
  }
  if (err.code === 'ModelNotFound' || err.status === 404)
    return `check that ${t.model.name} is offered at ${t.baseUrl} (the region of DASHSCOPE_BASE_URL)`;
  if (err.code === 'Arrearage' || err.status === 403)
    return 'check the account in Model Studio: balance, and access to this model';
  if (err.decision === 'rate-limited')
    return 'the key was not confirmed: run doctor again in a minute (or check what else uses this key)';
  return "see the provider's message";
}

export async function checkApi(embedder: Embedder | undefined, t: DoctorTarget): Promise<CheckRow> {
  if (!t.api) return row('api key', 'skip', 'not checked (--no-api): no request sent');
  if (embedder === undefined)
    return row('api key', 'fail', 'DASHSCOPE_API_KEY is not set', 'set DASHSCOPE_API_KEY (every worker needs it)');
  const spec = t.model;
  try {
    const result = await bounded(
      embedder.embed({
        model: spec.name,
        contents: [PROBE_WORD],
        parameters: requestParameters({ model: spec, dimension: t.dimension }),
        dimension: t.dimension,
      }),
      t.timeoutMs,
    );
    const tokens = result.usage.textTokens;
    const cost = estimateCost(spec, tokens, result.usage.imageTokens);
    const price =
      spec.priceTextPerMTokens === 0 ? 'free in the catalog' : `$${spec.priceTextPerMTokens} per million text tokens`;
    return row(
      'api key',
      'ok',
      `${spec.name} at ${t.baseUrl} embedded "${PROBE_WORD}": ${tokens} text token${tokens === 1 ? '' : 's'}, ${formatUsd(cost)} (${price})`,
      '',
      // 12 significant digits: the price arithmetic's float noise (1.0000000000000001e-7) is no fact
      { textTokens: tokens, costUsd: Number(cost.toPrecision(12)) },
    );
  } catch (err) {
    if (err instanceof CheckTimeout)
      return row(
        'api key',
        'fail',
        unanswered(t.baseUrl, err),
        'check DASHSCOPE_BASE_URL / --base-url and the network',
      );
    if (!(err instanceof EmbeddingApiError)) return row('api key', 'fail', message(err), 'see the message');
    const detail =
      err.status === 0
        ? `no answer from ${t.baseUrl}: ${err.code}: ${err.providerMessage}`
        : `refused: ${err.status} ${err.code}: ${err.providerMessage}`;
    return row('api key', err.decision === 'rate-limited' ? 'warn' : 'fail', detail, apiAction(err, t));
  }
}
