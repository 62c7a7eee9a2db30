// What a test expects to fail: the SrtGwError an action throws (or a promise rejects with).
// Anything else thrown is rethrown, and nothing thrown fails the test.
import { SrtGwError } from '../../errors.js';

export function errorOf(action: () => unknown): SrtGwError {
  try {
    action();
  } catch (error) {
    if (error instanceof SrtGwError) return error;
    throw error;
  }
  throw new Error('expected an SrtGwError, but nothing was thrown');
}

export async function rejectionOf(promise: Promise<unknown>): Promise<SrtGwError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof SrtGwError) return error;
    throw error;
  }
  throw new Error('expected an SrtGwError, but the promise resolved');
}
