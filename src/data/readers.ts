// Streaming readers for JSONL, CSV (RFC 4180) and Parquet. Each yields one item at a time with its
// location, so memory stays bounded by one record (text) or one row group (Parquet) whatever the
// file size. Malformed input becomes a bad record at file:line (file:rowGroup:row for Parquet).
import * as fs from 'fs';
import * as readline from 'readline';
import { type ReadOptions, type ReadReport, RecordStream, mapStream } from './report';

export interface Located<T> {
  value: T;
  location: string;
}

/** Lines of a text file with 1-based line numbers (LF or CRLF), streamed. */
export async function* readLines(file: string): AsyncGenerator<{ line: string; lineNo: number }> {
  const input = fs.createReadStream(file, { encoding: 'utf8' });
  const rl = readline.createInterface({ input, crlfDelay: Infinity });
  let lineNo = 0;
  try {
    for await (const line of rl) {
      lineNo++;
      yield { line, lineNo };
    }
  } finally {
    rl.close();
    input.destroy();
  }
}

/** JSON values of a JSONL file (blank lines skipped), with file:line locations. */
function jsonlSource(file: string): (report: ReadReport) => AsyncGenerator<Located<unknown>> {
  return async function* (report) {
    for await (const { line, lineNo } of readLines(file)) {
      if (line.trim() === '') continue;
      const location = `${file}:${lineNo}`;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch (e) {
        report.reject(location, `invalid JSON (${(e as Error).message})`);
        continue;
      }
      yield { value, location };
    }
  };
}

/**
 * Reads a JSONL file, mapping each parsed line with `map` (which may throw to reject the line, or
 * return undefined to drop it silently).
 */
export function readJsonl<T = unknown>(file: string, map: (value: unknown, location: string) => T | undefined = (v) => v as T, opts: ReadOptions = {}): RecordStream<T> {
  return mapStream(jsonlSource(file), map, opts);
}

// ---------------------------------------------------------------------------------------------
// CSV

export interface CsvOptions extends ReadOptions {
  /** Field delimiter (default ','; use '\t' for TSV). */
  delimiter?: string;
  /** true (default): the first record is the header; or the column names when the file has none. */
  header?: true | readonly string[];
  /** Rename columns: { ourName: 'headerName' } (columns not listed keep their header name). */
  columns?: Readonly<Record<string, string>>;
}

type CsvState = 'start' | 'unquoted' | 'quoted' | 'quoteSeen' | 'afterClose';

export interface CsvRecord {
  fields: string[];
  /** 1-based line where the record starts. */
  line: number;
  /** Why the record is malformed, or null. */
  error: string | null;
}

/**
 * Incremental RFC 4180 parser: quoted fields may hold delimiters, doubled quotes and line breaks;
 * records end at LF or CRLF. Feed chunks with `push`, collect complete records with their first
 * line number; `end` flushes the last record.
 */
export class CsvParser {
  private state: CsvState = 'start';
  private field = '';
  private record: string[] = [];
  private line = 1;
  private recordLine = 1;
  private pendingCR = false;
  private error: string | null = null;

  constructor(private readonly delimiter = ',') {
    if (delimiter.length !== 1 || delimiter === '"' || delimiter === '\n' || delimiter === '\r') {
      throw new Error(`CsvParser: delimiter must be one character other than quote or newline, got ${JSON.stringify(delimiter)}`);
    }
  }

  /** Parses a chunk; returns the records completed in it (`error` set for a malformed record). */
  push(chunk: string): CsvRecord[] {
    const out: CsvRecord[] = [];
    const d = this.delimiter;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i];
      if (this.pendingCR) {
        this.pendingCR = false;
        if (c === '\n') continue; // CRLF: the CR already ended the record
      }
      if (this.state === 'quoted') {
        if (c === '"') this.state = 'quoteSeen';
        else {
          if (c === '\n') this.line++;
          this.field += c;
        }
        continue;
      }
      if (this.state === 'quoteSeen') {
        if (c === '"') {
          this.field += '"'; // doubled quote = literal quote
          this.state = 'quoted';
          continue;
        }
        this.state = 'afterClose';
      }
      if (c === d) {
        this.endField();
      } else if (c === '\n' || c === '\r') {
        this.endField();
        out.push({ fields: this.record, line: this.recordLine, error: this.error });
        this.record = [];
        this.error = null;
        this.line++;
        this.recordLine = this.line;
        if (c === '\r') this.pendingCR = true;
      } else if (this.state === 'start' && c === '"') {
        this.state = 'quoted';
      } else {
        if (this.error === null) {
          if (this.state === 'afterClose') this.error = `text after the closing quote of field ${this.record.length + 1}`;
          else if (c === '"') this.error = `unexpected quote inside an unquoted field (field ${this.record.length + 1})`;
        }
        this.field += c;
        if (this.state === 'start') this.state = 'unquoted';
      }
    }
    return out;
  }

  private endField(): void {
    this.record.push(this.field);
    this.field = '';
    this.state = 'start';
  }

  /** Flushes the final record (a file need not end with a newline). */
  end(): CsvRecord[] {
    if (this.state === 'quoted') {
      const rec = { fields: [...this.record, this.field], line: this.recordLine, error: 'unterminated quoted field at end of file' };
      this.record = [];
      this.field = '';
      this.state = 'start';
      return [rec];
    }
    if (this.state !== 'start' || this.record.length > 0) {
      this.endField();
      const rec = { fields: this.record, line: this.recordLine, error: this.error };
      this.record = [];
      this.error = null;
      return [rec];
    }
    return [];
  }
}

function csvSource(file: string, opts: CsvOptions): (report: ReadReport) => AsyncGenerator<Located<Record<string, string>>> {
  return async function* (report) {
    const parser = new CsvParser(opts.delimiter ?? ',');
    let names: string[] | null = opts.header === undefined || opts.header === true ? null : [...opts.header];
    const rename = new Map<string, string>();
    for (const [ours, theirs] of Object.entries(opts.columns ?? {})) rename.set(theirs, ours);
    const input = fs.createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 16 });
    const handle = function* (recs: CsvRecord[]): Generator<Located<Record<string, string>>> {
      for (const rec of recs) {
        const location = `${file}:${rec.line}`;
        if (rec.fields.length === 1 && rec.fields[0] === '' && rec.error === null) continue; // blank line
        if (rec.error !== null) {
          report.reject(location, rec.error);
          continue;
        }
        if (names === null) {
          names = rec.fields.map((h, i) => (i === 0 ? h.replace(/^\uFEFF/, '') : h).trim());
          names = names.map((h) => rename.get(h) ?? h);
          const dup = names.find((h, i) => names!.indexOf(h) !== i);
          if (dup !== undefined) throw new Error(`${location}: duplicate column ${JSON.stringify(dup)} in the header`);
          continue;
        }
        if (rec.fields.length !== names.length) {
          report.reject(location, `expected ${names.length} fields (per the header), got ${rec.fields.length}`);
          continue;
        }
        const row: Record<string, string> = {};
        for (let i = 0; i < names.length; i++) row[names[i]] = rec.fields[i];
        yield { value: row, location };
      }
    };
    try {
      for await (const chunk of input) yield* handle(parser.push(chunk as string));
      yield* handle(parser.end());
    } finally {
      input.destroy();
    }
  };
}

/** Reads a CSV/TSV file as row objects keyed by (renamed) header names. */
export function readCsv<T = Record<string, string>>(
  file: string,
  map: (row: Record<string, string>, location: string) => T | undefined = (r) => r as T,
  opts: CsvOptions = {},
): RecordStream<T> {
  return mapStream(csvSource(file, opts), map, opts);
}

// ---------------------------------------------------------------------------------------------
// Parquet (hyparquet: pure JS, reads byte ranges of the file on demand)

export interface ParquetOptions extends ReadOptions {
  /** Columns to read (default all). */
  columns?: readonly string[];
}

interface Hyparquet {
  asyncBufferFromFile(file: string): Promise<unknown>;
  parquetMetadataAsync(file: unknown): Promise<{ row_groups: { num_rows: bigint | number }[] }>;
  parquetReadObjects(opts: { file: unknown; metadata: unknown; columns?: string[]; rowStart: number; rowEnd: number; rowFormat: 'object' }): Promise<Record<string, unknown>[]>;
}

// hyparquet is an ES module: loaded with a real dynamic import() (kept as import() in the CommonJS
// build by TypeScript's node16 module mode), so it works on every Node >= 20.
async function hyparquet(): Promise<Hyparquet> {
  try {
    return (await import('hyparquet')) as unknown as Hyparquet;
  } catch (e) {
    throw new Error(`Parquet support needs the 'hyparquet' package: ${(e as Error).message}`);
  }
}

function parquetSource(file: string, opts: ParquetOptions): (report: ReadReport) => AsyncGenerator<Located<Record<string, unknown>>> {
  return async function* () {
    const hp = await hyparquet();
    let buffer: unknown;
    let metadata: Awaited<ReturnType<Hyparquet['parquetMetadataAsync']>>;
    try {
      buffer = await hp.asyncBufferFromFile(file);
      metadata = await hp.parquetMetadataAsync(buffer);
    } catch (e) {
      throw new Error(`${file}: not a readable Parquet file (${(e as Error).message})`);
    }
    let start = 0;
    for (let g = 0; g < metadata.row_groups.length; g++) {
      const n = Number(metadata.row_groups[g].num_rows);
      // One row group in memory at a time.
      let rows: Record<string, unknown>[];
      try {
        rows = await hp.parquetReadObjects({ file: buffer, metadata, columns: opts.columns ? [...opts.columns] : undefined, rowStart: start, rowEnd: start + n, rowFormat: 'object' });
      } catch (e) {
        throw new Error(`${file}:${g}: cannot decode row group ${g} (${(e as Error).message})`);
      }
      for (let r = 0; r < rows.length; r++) yield { value: rows[r], location: `${file}:${g}:${r}` };
      start += n;
    }
  };
}

/** Reads a Parquet file row group by row group as row objects (BigInt for INT64 columns). */
export function readParquet<T = Record<string, unknown>>(
  file: string,
  map: (row: Record<string, unknown>, location: string) => T | undefined = (r) => r as T,
  opts: ParquetOptions = {},
): RecordStream<T> {
  return mapStream(parquetSource(file, opts), map, opts);
}
