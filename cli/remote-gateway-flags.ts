// `srt-gw run --gateway URL`: the flags that choose a remote gateway, and the ones that cannot go
// with it (they configure the local gateway, which then does not run).
import { resolve } from 'node:path';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { GATEWAY_TOKEN_ENV, type RemoteGatewayOptions } from '../jail/remote-gateway.js';

export interface RemoteGatewayFlags {
  gateway?: string;
  gatewayCa: string[];
  token?: string;
  allow: string[];
  upstreamCa: string[];
  upstreamProxy?: string;
  resolve: string[];
  dnsUpstream: string[];
  log?: string;
  metrics?: string;
  monitor: boolean;
  writePolicy?: string;
}

/** The remote gateway's settings; throws CONFIG_INVALID naming the flag to drop or the token to set. */
export function remoteGatewayFromFlags(flags: RemoteGatewayFlags, env: NodeJS.ProcessEnv): RemoteGatewayOptions {
  const url = flags.gateway;
  if (url === undefined) throw new SrtGwError(ErrorCodes.CONFIG_INVALID, '--gateway: no URL');
  // The remote decides, logs and counts: flags for a local gateway's decisions would silently do nothing.
  const local: [string, boolean][] = [
    ['--allow', flags.allow.length > 0],
    ['--upstream-ca', flags.upstreamCa.length > 0],
    ['--upstream-proxy', flags.upstreamProxy !== undefined],
    ['--resolve', flags.resolve.length > 0],
    ['--dns-upstream', flags.dnsUpstream.length > 0],
    ['--log', flags.log !== undefined],
    ['--metrics', flags.metrics !== undefined],
    ['--monitor', flags.monitor],
    ['--write-policy', flags.writePolicy !== undefined],
  ];
  const conflicting = local.filter(([, given]) => given).map(([flag]) => flag);
  if (conflicting.length > 0) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--gateway: ${conflicting.join(', ')} configure the local gateway, which does not run with --gateway (the remote's policy, audit log and metrics apply); drop them`);
  }
  const token = flags.token ?? env[GATEWAY_TOKEN_ENV] ?? '';
  if (token === '') throw new SrtGwError(ErrorCodes.CONFIG_INVALID, `--gateway: no token; set ${GATEWAY_TOKEN_ENV} to a token of one of the remote policy's clients: (srt-gw token issue on the remote)`);
  return { url, token, caFiles: flags.gatewayCa.map((file) => resolve(file)) };
}
