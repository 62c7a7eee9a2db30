#!/usr/bin/env node
// srt-gw command line. Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage.
import * as runModule from './run-command.js';
import { Command, CommanderError, Help, Option } from 'commander';
import { isSrtGwError } from '../errors.js';
import { collect } from './flags.js';

// `srt-gw policy explain ... | head` closes our stdout early: that is the reader's choice, not
// an error worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

/** Exit status of a usage error: 2 for srt-gw's own commands, 125 for `run` (the command's own statuses are its). */
const USAGE_ERROR = 2;
const RUN_SETUP_FAILED = 125;

/**
 * Commander prints the message; this decides the status. --help and --version exit 0; any other
 * usage error (unknown flag, missing argument) exits with the command's usage status.
 */
function exitOnUsageError(status: number): (error: CommanderError) => never {
  return (error) => process.exit(error.exitCode === 0 ? 0 : status);
}

/** Flags that collect into a list start as []: commander would print "(default: [])" after each. */
function optionDescription(this: Help, option: Option): string {
  if (Array.isArray(option.defaultValue) && option.defaultValue.length === 0) return option.description;
  return Help.prototype.optionDescription.call(this, option);
}

const program = new Command();
program
  .name('srt-gw')
  .description('Egress-first security gateway for AI agents: every request checked against per-API rules.')
  .version('0.1.0', '-v, --version', 'print the version')
  .showHelpAfterError('(run srt-gw help <command> for the flags)')
  .exitOverride(exitOnUsageError(USAGE_ERROR))
  // Commands made from here on inherit the exit rule and the help configuration.
  .configureHelp({ optionDescription })
  .enablePositionalOptions()
  .addHelpText(
    'after',
    `
Examples:
  srt-gw run --allow registry.npmjs.org -- npm install      a command whose only way out is the gateway
  srt-gw run --policy policy.yaml -- ./agent.sh             rules from a policy file
  srt-gw serve --policy policy.yaml --listen 127.0.0.1:8080 an explicit proxy for other clients
  srt-gw policy explain policy.yaml GET https://api.github.com/user   which rule decides, and why
  srt-gw doctor                                             what srt-gw run needs here

Exit status: 0 ok, 1 runtime failure, 2 bad configuration or usage; srt-gw run exits with the
command's status, or 125 when the run could not start.`,
  );

const serve = program
  .command('serve')
  .description('Run the gateway as an explicit HTTP proxy (CONNECT and absolute-form), terminating TLS with the local CA')
  .option('--policy <file>', 'policy YAML file')
  .option('--allow <host>', 'allow every request to HOST (repeatable; adds to --policy)', collect, [])
  .option('--listen <ip:port>', 'proxy listener address', '127.0.0.1:8080')
  .option('--ca-dir <dir>', 'local CA directory (default: $SRT_GW_CA_DIR or ~/.config/srt-gw/ca)')
  .option('--header-timeout <seconds>', 'time a client has to send a complete request head (default 10; slowloris bound)')
  .option('--log <file>', 'audit log file (JSON lines; - for stdout; default: stderr); SIGUSR1 opens it again after rotation')
  .option('--metrics <ip:port>', 'serve Prometheus metrics at http://IP:PORT/metrics')
  .option('--dns <ip:port>', 'serve DNS (UDP+TCP): allowed names get synthetic addresses, the rest NXDOMAIN; nothing is forwarded')
  .option('--dns-socket <socket>', 'also serve DNS (length-framed, as over TCP) on this unix socket for the jail\'s forwarder (mode 0600)')
  .option('--transparent <socket>', 'unix socket for PROXY-v2-framed connections from the jail\'s redirector (mode 0600)')
  .addOption(new Option('--dns-deny <rcode>', 'answer for names no rule allows').choices(['nxdomain', 'refused']).default('nxdomain'))
  .addOption(new Option('--monitor', 'report mode: log what would be denied, deny nothing (lets data out: trusted clients only)').default(false))
  .option('--write-policy <file>', 'on shutdown, write a draft policy (YAML) from the requests seen: one rule per host with the methods and path prefixes')
  .option('--tls-cert <file>', 'serve the proxy over TLS (an HTTPS proxy: clients use https:// proxy URLs) with this PEM certificate chain')
  .option('--tls-key <file>', 'PEM private key of --tls-cert')
  .option('--client-ca <file>', 'with --tls-cert: ask clients for a certificate and verify it against these PEM CA certificates (mtls clients of the policy)')
  .option('--state-dir <dir>', 'state directory whose client-tokens/ holds the key and revocations of tokens from srt-gw token issue (default: $XDG_STATE_HOME/srt-gw or ~/.local/state/srt-gw)')
  .option('--state <url>', `share egress budgets, onUnknownHost approvals and token revocations with other replicas through Redis: redis://HOST:PORT[/DB] or rediss://… (password in the URL or ${'$'}SRT_GW_STATE_PASSWORD)`)
  .option('--workers <n>', 'serve the port from N processes (auto: one per core); they share the policy, the CA, the audit log and /metrics', '1');
addUpstreamOptions(serve).action(async (flags) => {
    const { serve } = await import('./serve.js');
    await serve(flags);
  });

const runCommand = program
  .command('run')
  .description('Run a command in the jail: its only way out is the gateway, which checks every connection, request and DNS query')
  .usage('[flags] -- <command> [args...]')
  .argument('<command>', 'the command to run')
  .argument('[args...]', 'its arguments (put -- before the command so its flags are not read as srt-gw\'s)')
  .option('--policy <file>', 'policy YAML (default: ./.srt-gw.yaml, then ~/.config/srt-gw/policy.yaml, then ./.srt.json; none → no network)')
  .option('-s, --srt-settings <file>', "srt's JSON settings instead of an srt-gw policy (network and filesystem rules and allowLocalBinding are carried over, with warnings)")
  .option('--allow <host>', 'allow every request to HOST (repeatable; adds to the policy)', collect, [])
  .addOption(new Option('--allow-local-binding', "let the command listen on loopback, as the policy's jail.allowLocalBinding (macOS; on Linux it always can, reachable only from inside the jail)").default(false))
  .option('--ca-dir <dir>', 'local CA directory (default: $SRT_GW_CA_DIR or ~/.config/srt-gw/ca); hidden inside the jail')
  .option('--log <file>', 'audit log file (JSON lines, one per decision; - for stdout; default: none); hidden inside the jail')
  .option('--metrics <ip:port>', 'serve Prometheus metrics at http://IP:PORT/metrics while the command runs')
  .addOption(new Option('--monitor', 'report mode: log and summarise what would be denied, deny nothing (lets data out: trusted commands only)').default(false))
  .option('--write-policy <file>', 'when the command ends, write a draft policy (YAML) from its requests: one rule per host with the methods and path prefixes')
  .addOption(
    new Option('--write-mode <mode>', "direct: write in place; overlay (Linux): writes are reviewed after the run, the safe ones applied, the rest held for srt-gw changes (default: the policy's filesystem.writeMode, else direct)").choices(['direct', 'overlay']),
  )
  .addOption(new Option('-q, --quiet', 'no notices and no denial summary on stderr').default(false))
  .option('--gateway <url>', 'send the jail\'s traffic to this remote srt-gw serve (https://host:port), whose policy decides; token in $SRT_GW_GATEWAY_TOKEN (docs/fleet.md)')
  .option('--gateway-ca <file>', "with --gateway: a CA certificate (PEM) to trust for the remote's TLS certificate and its interception CA (repeatable)", collect, [])
  .option('--token <token>', 'with --gateway: the bearer token (prefer $SRT_GW_GATEWAY_TOKEN: arguments are visible in ps)')
  .passThroughOptions()
  .exitOverride(exitOnUsageError(RUN_SETUP_FAILED))
  .showHelpAfterError('usage: srt-gw run [flags] -- <command> [args...]   (srt-gw help run lists the flags)')
  .addHelpText(
    'after',
    `
Examples:
  srt-gw run --allow registry.npmjs.org -- npm install
  srt-gw run --policy policy.yaml -- claude          paths are relative to this directory
  srt-gw run --monitor -- ./build.sh                 report what a policy would deny, deny nothing
  srt-gw run -s ~/.srt-settings.json -- ./agent.sh    srt's settings, carried over with warnings
  SRT_GW_GATEWAY_TOKEN=... srt-gw run --gateway https://gw.internal:8443 --gateway-ca gw-ca.pem -- ./agent.sh
                                                     a central gateway decides (docs/fleet.md)

Exit status: the command's own (128+N when signal N ended it); 125 when the run could not start
(bad flag or policy, jail unavailable: the message says what to do).`,
  );
addUpstreamOptions(runCommand).action(async (command: string, args: string[], flags) => {
    await runModule.runAndExit(command, args, flags);
  });

program
  .command('demo')
  .description('Show the main job offline: a local upstream, a small policy, and a program in the jail that is allowed one request and denied two')
  .action(async () => {
    const { demo } = await import('./demo.js');
    process.exitCode = await demo();
  });

program
  .command('doctor')
  .description('Check what srt-gw run needs here (bubblewrap, user namespaces, nftables, native helpers, CA) and say what to fix')
  .option('--ca-dir <dir>', 'CA directory (default: $SRT_GW_CA_DIR or ~/.config/srt-gw/ca)')
  .action(async (flags: { caDir?: string }) => {
    const { doctor } = await import('./doctor.js');
    process.exitCode = await doctor(flags.caDir);
  });

const changes = program.command('changes').description('Review the writes that srt-gw run --write-mode overlay held back: list, show, apply, drop');
changes
  .command('list')
  .description('The runs with held changes, and what each holds')
  .addOption(new Option('--json', 'as JSON').default(false))
  .action(async (flags: { json: boolean }) => {
    process.exitCode = await (await import('./changes.js')).changesList(flags);
  });
changes
  .command('show')
  .description('A held change as a unified diff against the host (all of the run\'s, or those at or below PATH)')
  .argument('<id>', 'the id srt-gw changes list shows')
  .argument('[path]', 'a held path (absolute, or relative to the directory the run started in)')
  .action(async (id: string, path: string | undefined) => {
    process.exitCode = await (await import('./changes.js')).changesShow(id, path);
  });
changes
  .command('apply')
  .description('Apply held changes to the host: all of the run\'s, or those at or below each PATH')
  .argument('<id>', 'the id srt-gw changes list shows')
  .argument('[paths...]', 'held paths (absolute, or relative to the directory the run started in)')
  .addOption(new Option('--force', 'apply paths the host changed after the run started too, overwriting those changes').default(false))
  .action(async (id: string, paths: string[], flags: { force: boolean }) => {
    process.exitCode = await (await import('./changes.js')).changesApply(id, paths, flags);
  });
changes
  .command('drop')
  .description('Discard a run\'s held changes')
  .argument('<id>', 'the id srt-gw changes list shows')
  .action(async (id: string) => {
    process.exitCode = await (await import('./changes.js')).changesDrop(id);
  });

const ca = program.command('ca').description('Manage the local certificate authority');
ca.command('init')
  .description('Create the CA if absent (idempotent) and print its certificate path')
  .option('--ca-dir <dir>', 'CA directory (default: $SRT_GW_CA_DIR or ~/.config/srt-gw/ca)')
  .action(async (flags: { caDir?: string }) => {
    const { initCa } = await import('./ca.js');
    await initCa(flags.caDir);
  });
ca.command('path')
  .description('Print the CA certificate path (for --cacert, NODE_EXTRA_CA_CERTS, ...)')
  .option('--ca-dir <dir>', 'CA directory')
  .action(async (flags: { caDir?: string }) => {
    const { printCaPath } = await import('./ca.js');
    await printCaPath(flags.caDir);
  });

const token = program
  .command('token')
  .description('Mint, revoke and list tokens for the policy\'s "issued: {}" clients of srt-gw serve')
  .addHelpText(
    'after',
    `
Examples:
  srt-gw token issue --client laptops --ttl 8h          prints a token for client laptops
  srt-gw token issue --client ci --state-dir /var/lib/srt-gw   the directory srt-gw serve reads
  srt-gw token revoke --jti 1b4e28ba-2fa1-41d2-883f-0016d3cca427
  printf %s "$TOKEN" | srt-gw token revoke -              without the token in the process list
  srt-gw token list

The signing key lives in STATE/client-tokens (STATE: --state-dir, else $XDG_STATE_HOME/srt-gw or
~/.local/state/srt-gw), created on first use; srt-gw serve must read the same directory.`,
  );
token
  .command('issue')
  .description('Mint a token for an "issued: {}" client and print it; clients send it as Proxy-Authorization: Bearer TOKEN, or Basic CLIENT:TOKEN')
  .requiredOption('--client <id>', 'the client id in the policy')
  .option('--ttl <duration>', 'how long the token is valid: 30m, 1h, 7d (at most 90d)', '1h')
  .option('--state-dir <dir>', 'state directory holding client-tokens/ (default: $XDG_STATE_HOME/srt-gw or ~/.local/state/srt-gw)')
  .addOption(new Option('--json', 'print the token, jti, client and expiry as JSON').default(false))
  .action(async (flags: { client: string; ttl: string; stateDir?: string; json: boolean }) => {
    process.exitCode = await (await import('./token.js')).tokenIssue(flags);
  });
token
  .command('revoke')
  .description('Revoke a minted token, given itself or its jti; gateways reading the same state directory refuse it from then on')
  .argument('[token]', 'the token (- reads it from standard input)')
  .option('--jti <id>', 'the jti srt-gw token list shows, instead of the token')
  .option('--state-dir <dir>', 'state directory holding client-tokens/')
  .option('--state <url>', 'also revoke it in the Redis of serve --state (redis://HOST:PORT[/DB]; password in the URL or $SRT_GW_STATE_PASSWORD), for every replica')
  .action(async (value: string | undefined, flags: { jti?: string; stateDir?: string; state?: string }) => {
    process.exitCode = await (await import('./token.js')).tokenRevoke(value, flags);
  });
token
  .command('list')
  .description('The tokens minted so far: jti, client, expiry and whether each is active, expired or revoked (never the tokens)')
  .option('--state-dir <dir>', 'state directory holding client-tokens/')
  .addOption(new Option('--json', 'as JSON').default(false))
  .action(async (flags: { stateDir?: string; json: boolean }) => {
    process.exitCode = await (await import('./token.js')).tokenList(flags);
  });

const policy = program.command('policy').description('Author and review policies: check, explain, test, show the resolved policy, import srt settings, print the JSON Schema');
policy
  .command('check')
  .description('Validate and lint a policy (shadowed rules, allow/deny overlaps, broad wildcards, secrets); exit 1 on errors')
  .argument('<file>', 'policy YAML file')
  .action(async (file: string) => {
    const { checkPolicy } = await import('./policy.js');
    process.exitCode = await checkPolicy(file);
  });
policy
  .command('explain')
  .description('Say which rule decides a request and why, in words a reviewer can paste into a ticket')
  .argument('<file>', 'policy YAML file')
  .argument('<method>', 'HTTP method, such as GET')
  .argument('<url>', 'request URL, such as https://api.example.test/v1/x')
  .option('-H, --header <header>', "request header 'Name: value' (repeatable)", collect, [])
  .option('--json', 'print the explanation as JSON', false)
  .action(async (file: string, method: string, url: string, flags: { header: string[]; json: boolean }) => {
    const { explainPolicyDecision } = await import('./policy.js');
    process.exitCode = await explainPolicyDecision(file, method, url, flags.header, flags.json);
  });
policy
  .command('test')
  .description('Run a YAML table of requests and expected decisions against a policy; exit 1 on any failure')
  .argument('<file>', 'policy YAML file')
  .argument('[table]', 'decision table YAML (default: FILE with .test.yaml in place of .yaml)')
  .action(async (file: string, table: string | undefined) => {
    const { testPolicy } = await import('./policy.js');
    process.exitCode = await testPolicy(file, table);
  });
policy
  .command('show')
  .description('Print the policy after extends: every rule, filesystem path and jail setting, each with the file:line:column or preset it came from')
  .argument('<file>', 'policy YAML file')
  .option('--json', 'print it as JSON', false)
  .action(async (file: string, flags: { json: boolean }) => {
    const { showResolvedPolicy } = await import('./policy.js');
    process.exitCode = await showResolvedPolicy(file, flags.json);
  });
policy
  .command('import-srt')
  .description("Print the srt-gw policy equivalent to srt's JSON settings (~/.srt-settings.json, .srt.json), with warnings")
  .argument('<file>', 'srt settings JSON file')
  .action(async (file: string) => {
    const { importSrt } = await import('./policy.js');
    process.exitCode = await importSrt(file);
  });
policy
  .command('trust')
  .description('Let srt-gw run obey a policy it finds on its own (./.srt-gw.yaml, ./.srt.json) in its current content, and the files it extends')
  .argument('[file]', 'policy file (default: ./.srt-gw.yaml, else ./.srt.json)')
  .option('--list', 'list the trusted files instead', false)
  .action(async (file: string | undefined, flags: { list: boolean }) => {
    const { listTrustedPolicies, trustPolicy } = await import('./policy-trust-command.js');
    process.exitCode = flags.list ? listTrustedPolicies() : await trustPolicy(file);
  });
policy
  .command('untrust')
  .description('Forget the trust of a policy file: srt-gw run refuses it again until it is trusted')
  .argument('[file]', 'policy file (default: ./.srt-gw.yaml, else ./.srt.json)')
  .action(async (file: string | undefined) => {
    const { untrustPolicy } = await import('./policy-trust-command.js');
    process.exitCode = untrustPolicy(file);
  });
policy
  .command('schema')
  .description('Print the JSON Schema of the policy file format (for $schema and editors)')
  .action(async () => {
    const { printPolicySchema } = await import('./policy.js');
    process.exitCode = printPolicySchema();
  });

/** How the gateway reaches upstreams: the same flags for serve and run. */
function addUpstreamOptions(command: Command): Command {
  return command
    .option('--upstream-ca <file>', 'extra PEM CA trusted for upstream certificates (repeatable)', collect, [])
    .option('--upstream-proxy <url>', `send allowed traffic through this proxy with CONNECT (http://host:port or https://host:port; credentials from ${'$'}SRT_GW_UPSTREAM_PROXY_AUTH=user:password)`)
    // commander reads a "--no-" flag as the negation of "--upstream-proxy-for": the value lands in upstreamProxyFor.
    .option('--no-upstream-proxy-for <hosts>', 'hosts reached directly, not through --upstream-proxy: example.com (and subdomains), .example.com, * (comma-separated, repeatable)', collect, [])
    .option('--resolve <host=ip>', "connect to IP for HOST instead of resolving it (repeatable; curl's HOST:PORT:IP works too)", collect, [])
    .option('--dns-upstream <ip:port>', "DNS server for the gateway's own lookups (repeatable; default: the system's)", collect, [])
    .option('--upstream-timeout <seconds>', 'upstream connect, response-header and between-chunks timeout (default 10 s / 60 s / 300 s)');
}

// No top-level await: the entry also runs as a CommonJS bundle (scripts/bundle-cli.mjs).
program.parseAsync(process.argv).catch((error: unknown) => {
  if (isSrtGwError(error)) {
    process.stderr.write(`srt-gw: ${error.message}\n`);
    process.exit(error.code === 'SRTGW_CONFIG_INVALID' || error.code === 'SRTGW_POLICY_INVALID' || error.code === 'SRTGW_POLICY_UNREADABLE' || error.code === 'SRTGW_POLICY_UNTRUSTED' || error.code === 'SRTGW_CA_INVALID' || error.code === 'SRTGW_CREDENTIAL_UNAVAILABLE' ? 2 : 1);
  }
  process.stderr.write(`srt-gw: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
