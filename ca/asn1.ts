// node-forge's ASN.1 DER encoder and decoder, and nothing else of forge. `import 'node-forge'`
// loads all of it (TLS, ciphers, PKCS#12, ...): 27 ms of every start-up, against 4 ms for this
// module (measured with require() on this project's machine), and srt-gw only builds DER with it.
import type forge from 'node-forge';
import asn1Module from 'node-forge/lib/asn1.js';

export const asn1 = asn1Module as typeof forge.asn1;
export type Asn1 = forge.asn1.Asn1;
