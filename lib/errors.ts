/**
 * Errors tmem throws from its public API, each with a `code` in Node's style.
 *
 *   ERR_INVALID_ARG_TYPE      an argument or option of the wrong type (TypeError)
 *   ERR_INVALID_ARG_VALUE     a value of the right type that is not accepted: an unknown
 *                             option key, an unknown name (TypeError, as Node's own)
 *   ERR_OUT_OF_RANGE          a number or size outside what is accepted (RangeError)
 *   ERR_TMEM_CLOSED           a swap or region used after close() (Error)
 *   ERR_TMEM_DISPATCHER_GONE  the dispatcher Worker died: every pending request
 *                             rejects with it, and so does every later call (Error)
 *   ERR_TMEM_UNTRANSFERABLE   a region's ArrayBuffer in a postMessage transfer list (TypeError)
 *
 * A failed syscall is an Error with `code` (the errno name), `errno` and `syscall`,
 * made by the native binding.
 */

/** An Error with a `code`, as Node's own errors carry. */
export interface TmemError extends Error {
  code: string;
}

function withCode<E extends Error>(e: E, code: string): E & TmemError {
  Object.defineProperty(e, 'code', { value: code, enumerable: true, writable: true, configurable: true });
  return e as E & TmemError;
}

/** A TypeError with code ERR_INVALID_ARG_TYPE: `name` is not of an accepted type. */
export function invalidArgType(message: string): TypeError & TmemError {
  return withCode(new TypeError(message), 'ERR_INVALID_ARG_TYPE');
}

/**
 * An error with code ERR_INVALID_ARG_VALUE: a value (or key) that is not accepted. A TypeError
 * by default; Node also raises this code as a RangeError, which tmem uses for a name outside
 * an enumeration ('lz4' or 'zstd').
 */
export function invalidArgValue(message: string, kind: 'type' | 'range' = 'type'): Error & TmemError {
  return withCode(kind === 'range' ? new RangeError(message) : new TypeError(message), 'ERR_INVALID_ARG_VALUE');
}

/** A RangeError with code ERR_OUT_OF_RANGE. */
export function outOfRange(message: string): RangeError & TmemError {
  return withCode(new RangeError(message), 'ERR_OUT_OF_RANGE');
}

/** An Error with code ERR_TMEM_CLOSED: `what` was used after its close(). */
export function closedError(what: string): Error & TmemError {
  return withCode(new Error(`tmem: ${what} is closed`), 'ERR_TMEM_CLOSED');
}

/** An Error with code ERR_TMEM_DISPATCHER_GONE. */
export function dispatcherGone(message: string, cause?: unknown): Error & TmemError {
  const e = cause === undefined ? new Error(message) : new Error(message, { cause });
  return withCode(e, 'ERR_TMEM_DISPATCHER_GONE');
}

/** A TypeError with code ERR_TMEM_UNTRANSFERABLE. */
export function untransferable(message: string): TypeError & TmemError {
  return withCode(new TypeError(message), 'ERR_TMEM_UNTRANSFERABLE');
}

/** Gives `e` a code if it has none (an error from a lower layer: native argument checks, V8). */
export function ensureCode<E extends Error>(e: E, code: string): E & TmemError {
  if (typeof (e as Partial<TmemError>).code === 'string') return e as E & TmemError;
  return withCode(e, code);
}
