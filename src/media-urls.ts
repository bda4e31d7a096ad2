/**
 * Whether the provider can download presigned URLs of the object store. It fetches every
 * media URL from its own network: an S3 endpoint on a loopback, private or link-local
 * address, or under a name that only means something here (localhost, *.local, a name
 * with no dot), is out of its reach, and every URL of it would come back
 * "Failed to download multimodal content" after a paid-for round trip.
 *
 * So a run in URL mode (IMAGE_MODE=url) against such a store is refused at start, and
 * its videos, which go by URL in every mode, are skipped at scan with the reason; unless
 * ALLOW_PRIVATE_MEDIA_URLS=true says the API can reach the store (a simulator on this
 * machine, a provider endpoint inside the same network). `doctor` reports the same.
 *
 * The pipeline's own check, written apart from the simulator's (src/simulator/download.ts),
 * so that each can be wrong alone.
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

export const PRIVATE_MEDIA_VARIABLE = 'ALLOW_PRIVATE_MEDIA_URLS';

const INSIDE = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
] as const) {
  INSIDE.addSubnet(net, bits, 'ipv4');
}
INSIDE.addSubnet('::', 128, 'ipv6');
INSIDE.addSubnet('::1', 128, 'ipv6');
INSIDE.addSubnet('fc00::', 7, 'ipv6');
INSIDE.addSubnet('fe80::', 10, 'ipv6');

function insideAddress(ip: string): boolean {
  const v4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip)?.[1];
  if (v4 !== undefined) return INSIDE.check(v4, 'ipv4');
  const family = isIP(ip);
  return family !== 0 && INSIDE.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * Why the provider cannot reach `endpoint` (an S3_ENDPOINT value), or undefined when it
 * can or when it cannot be told (AWS itself, a name that does not resolve here: the
 * store's own check reports that).
 */
export async function privateEndpointReason(endpoint: string): Promise<string | undefined> {
  if (endpoint === '') return undefined;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return undefined;
  }
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const shown = `${url.protocol}//${url.host}`;
  if (isIP(host) !== 0)
    return insideAddress(host) ? `S3_ENDPOINT ${shown} is a loopback or private address` : undefined;
  if (
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    host.endsWith('.local') ||
    host.endsWith('.internal') ||
    !host.includes('.')
  ) {
    return `S3_ENDPOINT ${shown} is a name of this machine or network`;
  }
  try {
    const found = await lookup(host, { all: true });
    const inside = found.find((a) => insideAddress(a.address));
    return inside ? `S3_ENDPOINT ${shown} resolves to ${inside.address}, a loopback or private address` : undefined;
  } catch {
    return undefined;
  }
}

/** The sentence every refusal and skip ends with. */
export const PRIVATE_MEDIA_HINT = `the provider downloads media URLs from its own network and cannot reach it (set ${PRIVATE_MEDIA_VARIABLE}=true if the API can: a local simulator, an endpoint in the same network)`;

/** What a run does about it: undefined when URLs may be sent. */
export async function mediaUrlProblem(config: {
  readonly s3Endpoint: string;
  readonly allowPrivateMediaUrls: boolean;
}): Promise<string | undefined> {
  if (config.allowPrivateMediaUrls) return undefined;
  const reason = await privateEndpointReason(config.s3Endpoint);
  return reason === undefined ? undefined : `${reason}: ${PRIVATE_MEDIA_HINT}`;
}
