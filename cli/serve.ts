// `srt-gw serve`: the gateway as a long-running explicit proxy.
import { watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import { ErrorCodes, SrtGwError } from '../errors.js';
import { startGateway } from '../gateway/gateway.js';
import { parseDnsServer, parseListenAddress, parseResolveOverride, parseSeconds } from './flags.js';
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
  dns?: string;
  transparent?: string;
  dnsSocket?: string;
  upstreamTimeout?: string;
  headerTimeout?: string;
  dnsDeny: 'nxdomain' | 'refused';
  monitor: boolean;
}

export async function serve(flags: ServeFlags): Promise<void> {
  if (!flags.policy && flags.allow.length === 0) {
    throw new SrtGwError(ErrorCodes.CONFIG_INVALID, 'serve needs --policy FILE or at least one --allow HOST (default deny would refuse everything)');
  }
  const listen = parseListenAddress('--listen', flags.listen);
  const metrics = flags.metrics ? parseListenAddress('--metrics', flags.metrics) : null;
  const dns = flags.dns ? parseListenAddress('--dns', flags.dns) : null;
  const resolve = new Map(flags.resolve.map(parseResolveOverride));
  const dnsUpstream = flags.dnsUpstream.map(parseDnsServer);
  const upstreamTimeoutMs = flags.upstreamTimeout === undefined ? undefined : parseSeconds('--upstream-timeout', flags.upstreamTimeout) * 1000;
  const headersTimeoutMs = flags.headerTimeout === undefined ? undefined : parseSeconds('--header-timeout', flags.headerTimeout) * 1000;
  const policy = await policyFromFlags(flags.policy, flags.allow);

  // Signal handlers go in before anything is announced: the kernel delivers a signal whenever
  // it is sent, and one that arrives before a handler exists kills the process (exit by signal,
  // not 0). They stay installed, so a second signal while closing is absorbed too.
  const stopRequested = new Promise<void>((resolveStop) => {
    process.on('SIGTERM', () => resolveStop());
    process.on('SIGINT', () => resolveStop());
  });
  const gateway = await startGateway({
    policy,
    caDir: flags.caDir,
    listen,
    upstreamCaFiles: flags.upstreamCa,
    resolve,
    dnsUpstream,
    auditLog: flags.log ?? 2,
    metrics,
    dns,
    transparentSocket: flags.transparent,
    dnsSocket: flags.dnsSocket,
    upstreamTimeoutMs,
    limits: headersTimeoutMs === undefined ? undefined : { headersTimeoutMs },
    dnsDenyRcode: flags.dnsDeny === 'refused' ? 'REFUSED' : 'NXDOMAIN',
    monitor: flags.monitor,
  });
  // Reload on SIGHUP and when the policy file changes; a bad file keeps the old policy.
  const reload = async (why: string) => {
    try {
      await gateway.reload(await policyFromFlags(flags.policy, flags.allow));
      process.stderr.write(`srt-gw: policy reloaded (${why})\n`);
    } catch (error) {
      gateway.reportReloadFailure((error as Error).message);
      process.stderr.write(`srt-gw: policy reload failed, the previous policy stays in force: ${(error as Error).message}\n`);
    }
  };
  process.on('SIGHUP', () => void reload('SIGHUP'));
  const format = (a: { host: string; port: number }) => `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
  process.stdout.write(
    JSON.stringify({
      event: 'listening',
      proxy: format(gateway.proxyAddress),
      metrics: gateway.metricsAddress ? format(gateway.metricsAddress) : null,
      dns: gateway.dnsAddress ? format(gateway.dnsAddress) : null,
      transparent: flags.transparent ?? null,
      dnsSocket: flags.dnsSocket ?? null,
      ca: gateway.ca.certPath,
    }) + '\n',
  );

  // Watch the directory, not the file: editors and config tools replace files by rename,
  // which would silently end a watch on the old inode.
  let debounce: NodeJS.Timeout | undefined;
  const policyFile = flags.policy;
  const watcher = policyFile
    ? watch(dirname(policyFile), { persistent: false }, (_event, changed) => {
        if (changed !== null && changed !== basename(policyFile)) return;
        clearTimeout(debounce);
        debounce = setTimeout(() => void reload('file changed'), 100);
      })
    : null;

  await stopRequested;
  watcher?.close();
  await gateway.close();
}
