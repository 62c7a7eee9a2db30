// `srt-gw serve`: the gateway as a long-running explicit proxy.
import { watch } from 'node:fs';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { startGateway } from '../gateway/gateway.js';
import { parseDnsServer, parseListenAddress, parseResolveOverride } from './flags.js';
import { policyFromFlags } from './policy-source.js';

export interface ServeFlags {
  policy?: string;
  allow: string[];
  listen: string;
  caDir?: string;
  upstreamCa: string[];
  resolve: string[];
  dnsUpstream: string[];
  log?: string;
  metrics?: string;
  monitor: boolean;
}

export async function serve(flags: ServeFlags): Promise<void> {
  if (!flags.policy && flags.allow.length === 0) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, 'serve needs --policy FILE or at least one --allow HOST (default deny would refuse everything)');
  }
  const listen = parseListenAddress('--listen', flags.listen);
  const metrics = flags.metrics ? parseListenAddress('--metrics', flags.metrics) : null;
  const resolve = new Map(flags.resolve.map(parseResolveOverride));
  const dnsUpstream = flags.dnsUpstream.map(parseDnsServer);
  const policy = await policyFromFlags(flags.policy, flags.allow);

  const gateway = await startGateway({
    policy,
    caDir: flags.caDir,
    listen,
    upstreamCaFiles: flags.upstreamCa,
    resolve,
    dnsUpstream,
    auditLog: flags.log ?? 2,
    metrics,
    monitor: flags.monitor,
  });
  const format = (a: { host: string; port: number }) => `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
  process.stdout.write(
    JSON.stringify({
      event: 'listening',
      proxy: format(gateway.proxyAddress),
      metrics: gateway.metricsAddress ? format(gateway.metricsAddress) : null,
      ca: gateway.ca.certPath,
    }) + '\n',
  );

  // Reload on SIGHUP and when the policy file changes; a bad file keeps the old policy.
  const reload = async (why: string) => {
    try {
      gateway.reload(await policyFromFlags(flags.policy, flags.allow));
      process.stderr.write(`srt-gw: policy reloaded (${why})\n`);
    } catch (error) {
      process.stderr.write(`srt-gw: policy reload failed, the previous policy stays in force: ${(error as Error).message}\n`);
    }
  };
  process.on('SIGHUP', () => void reload('SIGHUP'));
  let debounce: NodeJS.Timeout | undefined;
  const watcher = flags.policy
    ? watch(flags.policy, { persistent: false }, () => {
        clearTimeout(debounce);
        debounce = setTimeout(() => void reload('file changed'), 100);
      })
    : null;

  await new Promise<void>((resolveStop) => {
    const stop = () => resolveStop();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  watcher?.close();
  await gateway.close();
}
