// Bad-record bookkeeping shared by every reader: a bad record is counted and its location
// (file:line, or file:rowGroup:row for Parquet) kept; in strict mode the first one throws.

export interface BadRecord {
  /** `file:line` (text formats) or `file:rowGroup:row` (Parquet; both 0-based, row within the group). */
  location: string;
  message: string;
}

export interface ReadOptions {
  /** Throw on the first bad record instead of skipping it (default false). */
  strict?: boolean;
  /** Called for every bad record (e.g. to log it) in non-strict mode. */
  onBadRecord?: (bad: BadRecord) => void;
  /** How many bad records to keep in the report (default 100; all are counted). */
  keepBad?: number;
}

/** Counts of one read; filled while iterating, final once the iteration ends. */
export class ReadReport {
  /** Records yielded. */
  records = 0;
  /** Records skipped as bad. */
  bad = 0;
  /** The first `keepBad` bad records. */
  readonly badRecords: BadRecord[] = [];

  constructor(private readonly opts: ReadOptions = {}) {}

  /** Registers a bad record: throws in strict mode, else counts it. */
  reject(location: string, message: string): void {
    if (this.opts.strict) throw new DataError(location, message);
    this.bad++;
    const b = { location, message };
    if (this.badRecords.length < (this.opts.keepBad ?? 100)) this.badRecords.push(b);
    this.opts.onBadRecord?.(b);
  }

  /** One line of text: "N records, M bad (first: file:line: message)". */
  summary(): string {
    const first = this.badRecords[0];
    return `${this.records} records, ${this.bad} bad${first ? ` (first: ${first.location}: ${first.message})` : ''}`;
  }
}

/** A data error with its location; the message starts with the location (file:line: ...). */
export class DataError extends Error {
  constructor(readonly location: string, readonly problem: string) {
    super(`${location}: ${problem}`);
    this.name = 'DataError';
  }
}

/**
 * An async-iterable stream of records with the report of the read. Iterate once; the report is
 * complete when the iteration finishes.
 */
export class RecordStream<T> implements AsyncIterable<T> {
  readonly report: ReadReport;
  private used = false;

  constructor(private readonly produce: (report: ReadReport) => AsyncGenerator<T>, opts: ReadOptions = {}) {
    this.report = new ReadReport(opts);
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.used) throw new Error('RecordStream: a stream can be iterated only once (open the file again)');
    this.used = true;
    const report = this.report;
    const inner = this.produce(report);
    return {
      async next(): Promise<IteratorResult<T>> {
        const r = await inner.next();
        if (!r.done) report.records++;
        return r;
      },
      async return(): Promise<IteratorResult<T>> {
        return inner.return(undefined);
      },
    };
  }

  /** Collects everything (only for small inputs: tests, fixtures). */
  async toArray(): Promise<T[]> {
    const out: T[] = [];
    for await (const r of this) out.push(r);
    return out;
  }
}

/** Maps a stream, turning mapper errors into bad records at the item's location. */
export function mapStream<A, B>(
  source: (report: ReadReport) => AsyncGenerator<{ value: A; location: string }>,
  fn: (value: A, location: string) => B | undefined,
  opts: ReadOptions = {},
): RecordStream<B> {
  return new RecordStream<B>(async function* (report) {
    for await (const { value, location } of source(report)) {
      let out: B | undefined;
      try {
        out = fn(value, location);
      } catch (e) {
        if (e instanceof DataError) throw e;
        report.reject(location, (e as Error).message);
        continue;
      }
      if (out !== undefined) yield out;
    }
  }, opts);
}
