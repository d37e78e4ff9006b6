// Shared argument handling of the sequence ops (linearRecurrence, hstuAttention): packed offsets,
// padded lengths, and native error messages prefixed with the op name. Internal (not re-exported).

export function intArray(op: string, name: string, x: unknown): Int32Array {
  if (x instanceof Int32Array) return x;
  if (Array.isArray(x)) {
    const a = new Int32Array(x.length);
    for (let i = 0; i < x.length; i++) {
      const e: unknown = x[i];
      if (typeof e !== 'number' || !Number.isInteger(e)) throw new TypeError(`${op}: ${name}[${i}]: expected an integer, got ${String(e)}`);
      a[i] = e;
    }
    return a;
  }
  throw new TypeError(`${op}: ${name}: expected an Int32Array or an array of integers, got ${x === null ? 'null' : typeof x}`);
}

/**
 * Checks packed offsets against the row count: offsets[0] = 0, non-decreasing, offsets[B] = rows.
 * `name` is the argument as the caller's users know it (e.g. 'options.offsets').
 */
export function checkOffsets(op: string, offsets: Int32Array, rows: number, name = 'offsets'): void {
  if (offsets.length < 1) throw new Error(`${op}: ${name}: expected at least 1 entry (B+1), got 0`);
  if (offsets[0] !== 0) throw new Error(`${op}: ${name}[0]: expected 0, got ${offsets[0]}`);
  for (let b = 1; b < offsets.length; b++) {
    if (offsets[b] < offsets[b - 1]) {
      throw new Error(`${op}: ${name}: expected non-decreasing values, got offsets[${b}] = ${offsets[b]} < offsets[${b - 1}] = ${offsets[b - 1]}`);
    }
  }
  const last = offsets[offsets.length - 1];
  if (last > rows) throw new Error(`${op}: ${name}: offsets[${offsets.length - 1}] = ${last} is past the end of the packed rows (${rows})`);
  if (last !== rows) throw new Error(`${op}: ${name}: expected offsets[${offsets.length - 1}] = ${rows} (the packed row count), got ${last}`);
}

/** Checks padded lengths: B entries in [0, L]. */
export function checkLengths(op: string, lengths: Int32Array, batch: number, maxLen: number): void {
  if (lengths.length !== batch) throw new Error(`${op}: lengths: expected ${batch} entries (one per sequence), got ${lengths.length}`);
  for (let b = 0; b < batch; b++) {
    if (lengths[b] < 0 || lengths[b] > maxLen) throw new RangeError(`${op}: lengths[${b}]: expected 0..${maxLen}, got ${lengths[b]}`);
  }
}

// Native errors (decay outside [0, 1], ...) get the op name in front.
export function callNative(op: string, fn: () => void): void {
  try {
    fn();
  } catch (e) {
    const msg = (e as Error).message;
    throw new Error(msg.startsWith(`${op}:`) ? msg : `${op}: ${msg}`);
  }
}
