// What every fuzz target asserts about the parser it drives: it fails only in its documented way,
// it finishes in bounded time, and its round-trip properties hold. A violated contract throws a
// FuzzContractViolation, which Jazzer.js reports as a crash and saves as an input to replay.
import { SrtGwError, ErrorCodes } from '../dist/errors.js';

const KNOWN_CODES = new Set(Object.values(ErrorCodes));

export class FuzzContractViolation extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'FuzzContractViolation';
  }
}

export function violation(message, cause) {
  return new FuzzContractViolation(message, cause === undefined ? undefined : { cause });
}

/** Runs `parse`; an error passes only when it is an SrtGwError with one of `codes` (any known code when omitted). */
export function expectOnlySrtGwError(parse, codes) {
  try {
    return { value: parse() };
  } catch (error) {
    if (error instanceof FuzzContractViolation) throw error;
    const allowed = codes === undefined ? KNOWN_CODES : new Set(codes);
    if (error instanceof SrtGwError && allowed.has(error.code)) return { error };
    throw violation(`threw ${describe(error)}; only SrtGwError ${[...allowed].join('/')} is documented`, error);
  }
}

export function expectEqual(actual, expected, what) {
  if (actual !== expected) throw violation(`${what}: ${JSON.stringify(actual)} !== ${JSON.stringify(expected)}`);
}

export function expect(condition, what) {
  if (!condition) throw violation(what);
}

/** Settles `promise` or fails the contract when it takes longer than `ms` (a hang, for an input that is complete). */
export async function withinDeadline(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(violation(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export function describe(error) {
  if (error instanceof Error) return `${error.constructor.name}${error.code ? ` ${error.code}` : ''}: ${error.message}`;
  return `non-Error ${typeof error}: ${String(error)}`;
}
