import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveFilesystemRules } from '../filesystem-rules.js';
import type { JailSpawnOptions } from '../jail.js';
import { RunDirectory } from '../run-directory.js';
import { bwrapArguments, findProgram, JAIL_PATHS, redirectedDestination, type BwrapInvocation } from './linux-jail.js';

const root = mkdtempSync(join(tmpdir(), 'srt-gw-linux-jail-test-'));
const home = join(root, 'home');
const cwd = join(root, 'project');
mkdirSync(join(cwd, '.git'), { recursive: true });
mkdirSync(home);
const runDirectory = RunDirectory.create(root);
afterAll(() => {
  runDirectory.dispose();
  rmSync(root, { recursive: true, force: true });
});

const options: JailSpawnOptions = {
  command: 'curl',
  args: ['--', '-x', 'http://evil.test', '--unshare-net'],
  cwd,
  env: {},
  filesystem: resolveFilesystemRules(undefined, { home, cwd, alwaysHidden: [join(home, '.config/srt-gw/ca')], alwaysReadOnly: [] }),
  caBundle: join(runDirectory.jailDir, 'ca-bundle.pem'),
  runDirectory,
  gateway: {
    acceptRedirected: () => undefined,
    dnsSocket: join(runDirectory.gatewayDir, 'dns.sock'),
    proxyAddress: { host: '127.0.0.1', port: 1 },
  },
};
const invocation: BwrapInvocation = {
  bwrap: '/usr/bin/bwrap',
  nft: '/usr/sbin/nft',
  helpers: { init: '/pkg/native/build/srt-gw-jail-init', redirector: '/pkg/native/build/srt-gw-redirector', dnsForwarder: '/pkg/native/build/srt-gw-dns-forwarder' },
  uid: 1000,
  gid: 1001,
  controlFd: 3,
  statusFd: 4,
  channelFd: 5,
  nftRules: join(runDirectory.jailDir, 'rules.nft'),
  hostsFile: join(runDirectory.jailDir, 'hosts'),
  emptyFile: join(runDirectory.jailDir, 'empty'),
};
writeFileSync(invocation.emptyFile, '', { mode: 0 });
const args = bwrapArguments(options, invocation);
// The init's own "--" follows its last flag; the command's arguments may contain more.
const commandStart = args.indexOf('--', args.indexOf('--control-fd'));
const bwrapPart = args.slice(0, args.indexOf('--'));
const initPart = args.slice(args.indexOf('--') + 1, commandStart);
const valueOf = (list: string[], flag: string) => list[list.indexOf(flag) + 1];

describe('bwrapArguments', () => {
  it('with reviewed writes: binds the layers, names each root to the init, and adds DAC_OVERRIDE for overlayfs', () => {
    const layersDir = join(root, 'layers');
    const withOverlay = bwrapArguments({ ...options, overlay: { roots: [cwd], layersDir } }, invocation);
    const start = withOverlay.indexOf('--', withOverlay.indexOf('--control-fd'));
    const init = withOverlay.slice(withOverlay.indexOf('--') + 1, start);
    const bwrap = withOverlay.slice(0, withOverlay.indexOf('--'));
    expect(bwrap.join(' ')).toContain(`--bind ${layersDir} ${JAIL_PATHS.overlayLayersDir}`);
    expect(bwrap.join(' ')).toContain('--cap-add CAP_DAC_OVERRIDE');
    expect(valueOf(init, '--overlay-layers')).toBe(JAIL_PATHS.overlayLayersDir);
    expect(valueOf(init, '--overlay')).toBe(cwd);
    // Without it, none of that.
    expect(bwrapPart.join(' ')).not.toContain('CAP_DAC_OVERRIDE');
    expect(initPart).not.toContain('--overlay');
  });

  it('makes every namespace and ties the jail to this process', () => {
    for (const flag of ['--unshare-user', '--unshare-net', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--die-with-parent', '--new-session']) {
      expect(bwrapPart).toContain(flag);
    }
  });

  it('drops every capability before adding back only the four the init needs', () => {
    const drop = bwrapPart.indexOf('--cap-drop');
    expect(valueOf(bwrapPart, '--cap-drop')).toBe('ALL');
    const added = bwrapPart.flatMap((arg, i) => (arg === '--cap-add' ? [bwrapPart[i + 1]] : []));
    expect(added.sort()).toEqual(['CAP_NET_ADMIN', 'CAP_NET_BIND_SERVICE', 'CAP_SETFCAP', 'CAP_SYS_ADMIN']);
    expect(bwrapPart.indexOf('--cap-add')).toBeGreaterThan(drop);
  });

  it('mounts the gateway sockets only at the directory the init hides from the command', () => {
    const binds = bwrapPart.flatMap((arg, i) => (arg === '--ro-bind' || arg === '--bind' ? [[bwrapPart[i + 1], bwrapPart[i + 2]]] : []));
    const gatewayBinds = binds.filter(([source]) => source!.startsWith(runDirectory.gatewayDir));
    expect(gatewayBinds).toEqual([[runDirectory.gatewayDir, JAIL_PATHS.gatewayDir]]);
    expect(valueOf(initPart, '--hide')).toBe(JAIL_PATHS.gatewayDir);
    expect(valueOf(initPart, '--dns-socket')).toBe(`${JAIL_PATHS.gatewayDir}/dns.sock`);
    // Connections go to the gateway as descriptors over node's IPC channel, never through a path.
    expect(valueOf(initPart, '--gateway-channel')).toBe('5');
    expect(initPart).not.toContain('--gateway-socket');
  });

  it('runs the init from the helpers directory, with the caller\'s ids and the fds srt-gw run opened', () => {
    expect(initPart[0]).toBe(`${JAIL_PATHS.helpersDir}/srt-gw-jail-init`);
    expect(valueOf(initPart, '--redirector')).toBe(`${JAIL_PATHS.helpersDir}/srt-gw-redirector`);
    expect(valueOf(initPart, '--nft-rules')).toBe(`${JAIL_PATHS.jailDir}/rules.nft`);
    expect([valueOf(initPart, '--uid'), valueOf(initPart, '--gid'), valueOf(initPart, '--control-fd')]).toEqual(['1000', '1001', '3']);
    expect(valueOf(bwrapPart, '--json-status-fd')).toBe('4');
  });

  it('keeps node\'s IPC channel variables away from the command', () => {
    const unset = bwrapPart.flatMap((arg, i) => (arg === '--unsetenv' ? [bwrapPart[i + 1]] : []));
    expect(unset).toEqual(expect.arrayContaining(['NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE']));
  });

  it('passes the command and its arguments after the last "--", untouched even when they look like flags', () => {
    expect(args.slice(commandStart + 1)).toEqual(['curl', '--', '-x', 'http://evil.test', '--unshare-net']);
  });

  it('starts the command in its working directory and shows it the jail\'s /etc/hosts', () => {
    expect(valueOf(bwrapPart, '--chdir')).toBe(cwd);
    const hostsBind = bwrapPart.findIndex((arg, i) => arg === '--ro-bind' && bwrapPart[i + 2] === '/etc/hosts');
    expect(bwrapPart[hostsBind + 1]).toBe(invocation.hostsFile);
  });

  it('mounts the trust bundle over the distribution bundle that exists here', () => {
    const over = bwrapPart.findIndex((arg, i) => arg === '--ro-bind' && bwrapPart[i + 1] === options.caBundle);
    expect(over).toBeGreaterThan(0);
    expect(bwrapPart[over + 2]).toMatch(/^\/etc\//);
  });

  it('never names the CA directory as a mount source', () => {
    expect(args.some((arg) => arg.includes('.config/srt-gw/ca') && !arg.startsWith(home))).toBe(false);
    const sources = bwrapPart.flatMap((arg, i) => (arg === '--ro-bind' || arg === '--bind' ? [bwrapPart[i + 1]!] : []));
    expect(sources.some((source) => source.includes('srt-gw/ca'))).toBe(false);
  });
});

describe('findProgram', () => {
  it('finds programs in sbin even when PATH lacks it (an ordinary user\'s PATH)', () => {
    expect(findProgram('sh', '/nonexistent')).toMatch(/\/sh$/);
    expect(findProgram('no-such-program-srt-gw', '/usr/bin')).toBeNull();
  });
});

describe('redirectedDestination', () => {
  it.each([
    [{ srtgw: 'redirected', address: '198.18.0.7', port: 443, source: '127.0.0.1:40000' }, { address: '198.18.0.7', port: 443, source: '127.0.0.1:40000' }],
    [{ srtgw: 'redirected', address: 'fd73:7274:6777::1', port: 8443, source: '[::1]:1' }, { address: 'fd73:7274:6777::1', port: 8443, source: '[::1]:1' }],
  ])('accepts the redirector\'s message %j', (message, expected) => {
    expect(redirectedDestination(message)).toEqual(expected);
  });

  it.each([
    null,
    'redirected',
    { address: '198.18.0.7', port: 443, source: 's' },
    { srtgw: 'redirected', address: 'evil.test', port: 443, source: 's' },
    { srtgw: 'redirected', address: '198.18.0.7', port: 0, source: 's' },
    { srtgw: 'redirected', address: '198.18.0.7', port: 70000, source: 's' },
    { srtgw: 'redirected', address: '198.18.0.7', port: '443', source: 's' },
    { srtgw: 'redirected', address: '198.18.0.7', port: 443 },
  ])('refuses %j (the socket is then dropped)', (message) => {
    expect(redirectedDestination(message)).toBeNull();
  });
});
