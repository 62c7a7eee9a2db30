// Throwaway certificates for the test upstreams, made with the openssl CLI on purpose: the tests
// must not trust our own ca/ module to produce the certificates they check the gateway against.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCa {
  label: string;
  certPath: string;
  keyPath: string;
  /** PEM text of the CA certificate. */
  cert: string;
}

export interface TestServerCert {
  certPath: string;
  keyPath: string;
  /** PEM text of the leaf certificate. */
  cert: string;
  /** PEM text of the private key. */
  key: string;
  names: string[];
}

export interface IssueOptions {
  /** SAN dNSNames; the first is also the subject CN. */
  names: string[];
  /** SAN iPAddresses; default ["127.0.0.1"]. */
  ipAddresses?: string[];
  /** Issue a certificate whose validity ended in 2020. */
  expired?: boolean;
  /** File name stem inside the PKI directory; default derived from the first name. */
  label?: string;
}

export interface TestPki {
  dir: string;
  /** The CA the tests hand to the gateway with --upstream-ca. */
  ca: TestCa;
  /** A CA nobody trusts, for the bad-certificate cases. */
  untrustedCa: TestCa;
  /** A certificate for `names` (plus 127.0.0.1) from `ca`. */
  server: TestServerCert;
  /** The same names, signed by `untrustedCa`. */
  untrustedServer: TestServerCert;
  /** The same names from `ca`, but expired. */
  expiredServer: TestServerCert;
  /** A certificate from `ca` valid only for wrong-name.invalid-test (not for `names`). */
  wrongNameServer: TestServerCert;
  issue(ca: TestCa, options: IssueOptions): TestServerCert;
  cleanup(): void;
}

const GENERATE_EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args.join(' ')} failed: ${stderr}`, { cause: error });
  }
}

function safeStem(text: string): string {
  return text.replace(/[^a-zA-Z0-9.-]/g, '_');
}

export function createTestCa(dir: string, label: string): TestCa {
  const stem = safeStem(label);
  const certPath = join(dir, `${stem}-ca.pem`);
  const keyPath = join(dir, `${stem}-ca-key.pem`);
  openssl(
    [
      'req', '-x509', ...GENERATE_EC_KEY,
      '-keyout', keyPath, '-out', certPath,
      '-days', '3',
      '-subj', `/CN=srt-gw test CA ${label}`,
      '-addext', 'basicConstraints=critical,CA:TRUE',
      '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  return { label, certPath, keyPath, cert: readFileSync(certPath, 'utf8') };
}

let issued = 0;

export function issueServerCert(dir: string, ca: TestCa, options: IssueOptions): TestServerCert {
  const first = options.names[0];
  if (first === undefined) throw new Error('issueServerCert needs at least one name');
  issued += 1;
  const stem = `${safeStem(options.label ?? first)}-${ca.label}-${issued}`;
  const keyPath = join(dir, `${stem}-key.pem`);
  const csrPath = join(dir, `${stem}.csr`);
  const certPath = join(dir, `${stem}.pem`);
  const extPath = join(dir, `${stem}.ext`);
  const sans = [
    ...options.names.map((name) => `DNS:${name}`),
    ...(options.ipAddresses ?? ['127.0.0.1']).map((ip) => `IP:${ip}`),
  ];
  writeFileSync(
    extPath,
    [
      `subjectAltName=${sans.join(',')}`,
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid,issuer',
      '',
    ].join('\n'),
  );
  openssl(['req', '-new', ...GENERATE_EC_KEY, '-keyout', keyPath, '-out', csrPath, '-subj', `/CN=${first}`], dir);
  if (options.expired) {
    // `openssl x509 -req` cannot backdate; `openssl ca` can set both ends of the validity.
    const caDir = mkdtempSync(join(dir, 'expired-ca-'));
    writeFileSync(join(caDir, 'index.txt'), '');
    writeFileSync(join(caDir, 'serial.txt'), '1000\n');
    writeFileSync(
      join(caDir, 'ca.cnf'),
      [
        '[ ca ]',
        'default_ca = test_ca',
        '[ test_ca ]',
        'database = index.txt',
        'serial = serial.txt',
        'new_certs_dir = .',
        `certificate = ${ca.certPath}`,
        `private_key = ${ca.keyPath}`,
        'default_md = sha256',
        'policy = policy_any',
        'unique_subject = no',
        '[ policy_any ]',
        'commonName = supplied',
        '',
      ].join('\n'),
    );
    openssl(
      [
        'ca', '-batch', '-notext', '-config', 'ca.cnf',
        '-in', csrPath, '-out', certPath, '-extfile', extPath,
        '-startdate', '20200101000000Z', '-enddate', '20200201000000Z',
      ],
      caDir,
    );
  } else {
    openssl(
      [
        'x509', '-req', '-in', csrPath,
        '-CA', ca.certPath, '-CAkey', ca.keyPath,
        '-set_serial', `0x${Date.now().toString(16)}${issued.toString(16).padStart(4, '0')}`,
        '-days', '2', '-sha256',
        '-extfile', extPath, '-out', certPath,
      ],
      dir,
    );
  }
  return {
    certPath,
    keyPath,
    cert: readFileSync(certPath, 'utf8'),
    key: readFileSync(keyPath, 'utf8'),
    names: options.names,
  };
}

/** A fresh temp dir with a trusted and an untrusted test CA and server certificates for `names`. */
export function createTestPki(names: string[]): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'srt-gw-test-pki-'));
  const ca = createTestCa(dir, 'trusted');
  const untrustedCa = createTestCa(dir, 'untrusted');
  return {
    dir,
    ca,
    untrustedCa,
    server: issueServerCert(dir, ca, { names }),
    untrustedServer: issueServerCert(dir, untrustedCa, { names }),
    expiredServer: issueServerCert(dir, ca, { names, expired: true, label: 'expired' }),
    wrongNameServer: issueServerCert(dir, ca, { names: ['wrong-name.invalid-test'], ipAddresses: [] }),
    issue: (issuer, options) => issueServerCert(dir, issuer, options),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
