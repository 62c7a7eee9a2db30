// The local CA's public API: create/load the CA, issue leaves, cache their TLS contexts, and
// build the trust bundle for the jail.
export { CertificateAuthority, createCaCertificatePem, loadOrCreateCertificateAuthority, CA_LIFETIME_MS } from './authority.js';
export { isValidLeafHost, LEAF_BACKDATE_MS, LEAF_LIFETIME_MS, type LeafCertificate } from './leaf.js';
export { LeafContextCache, LEAF_RENEW_BEFORE_MS, type LeafContextCacheOptions, type LeafContextCacheStats } from './leaf-cache.js';
export { CA_CERT_FILE, CA_KEY_FILE, defaultCaDir } from './paths.js';
export { buildTrustBundle, SYSTEM_CA_BUNDLE } from './trust-bundle.js';
