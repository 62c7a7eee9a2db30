// node-forge ships types for its whole package only; this names the one module ca/asn1.ts loads.
declare module 'node-forge/lib/asn1.js' {
  const asn1: unknown;
  export default asn1;
}
