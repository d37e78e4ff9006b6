// Where commands print: injectable so tests run commands in-process and read their output.
export interface CliIO {
  out(text: string): void;
  err(text: string): void;
}

export const processIO: CliIO = {
  out: (t) => void process.stdout.write(t.endsWith('\n') ? t : `${t}\n`),
  err: (t) => void process.stderr.write(t.endsWith('\n') ? t : `${t}\n`),
};

/** A result row: flat, JSON-serialisable values. */
export type Row = Record<string, string | number | boolean | null>;

function cell(v: Row[string], col: string): string {
  // Metrics get 4 decimals; durations (columns named *_s, *_ms) one.
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(/_m?s$/.test(col) ? 1 : 4);
  return v === null ? '-' : String(v);
}

/**
 * Prints rows: with `json`, one JSON object per line (machine-readable; numbers unrounded);
 * otherwise an aligned text table with the union of the rows' keys as columns.
 */
export function printRows(io: CliIO, rows: readonly Row[], json: boolean): void {
  if (json) {
    for (const r of rows) io.out(JSON.stringify(r));
    return;
  }
  if (rows.length === 0) return;
  const cols: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  const cells = rows.map((r) => cols.map((c) => (c in r ? cell(r[c], c) : '')));
  const width = cols.map((c, i) => Math.max(c.length, ...cells.map((row) => row[i].length)));
  const line = (vals: string[]): string => vals.map((v, i) => (i === 0 ? v.padEnd(width[i]) : v.padStart(width[i]))).join('  ');
  io.out(line(cols));
  io.out(width.map((w) => '-'.repeat(w)).join('  '));
  for (const c of cells) io.out(line(c));
}
