// Writing session records as JSONL, atomically (temp file + fsync + rename): a reader never sees
// a partial file.
import { AtomicWriter } from '../io/atomic';
import type { SessionRecord } from './schema';

/** Writes records one JSON object per line; returns the number of bytes written. */
export function writeSessionsJsonl(file: string, records: Iterable<SessionRecord>): number {
  const w = new AtomicWriter(file);
  let bytes = 0;
  try {
    for (const r of records) {
      const line = `${JSON.stringify(r)}\n`;
      bytes += Buffer.byteLength(line);
      w.write(line);
    }
    w.commit();
  } catch (e) {
    w.abort();
    throw e;
  }
  return bytes;
}
