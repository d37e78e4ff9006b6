// Atomic file writes: data goes to a temp file in the same directory, is fsync'ed, then renamed
// over the target (rename is atomic on POSIX within one file system), and the directory is fsync'ed
// so the rename itself survives a crash. A reader therefore sees the old file or the whole new one,
// never a prefix.
import * as fs from 'fs';
import * as path from 'path';

function tempPathFor(target: string): string {
  const rand = Math.floor(Math.random() * 0xffffffff).toString(16);
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${rand}.tmp`);
}

function fsyncDir(dir: string): void {
  // Directory fsync is not supported everywhere (e.g. Windows); the rename is still atomic there.
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    /* best effort */
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Writes `chunks` (bytes or UTF-8 strings) to `target` atomically. */
export function writeFileAtomicSync(target: string, chunks: string | Uint8Array | readonly (string | Uint8Array)[]): void {
  const list = typeof chunks === 'string' || chunks instanceof Uint8Array ? [chunks] : chunks;
  const tmp = tempPathFor(target);
  const fd = fs.openSync(tmp, 'w', 0o644);
  try {
    for (const c of list) {
      const buf = typeof c === 'string' ? Buffer.from(c, 'utf8') : c;
      let off = 0;
      while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
    }
    fs.fsyncSync(fd);
  } catch (e) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  fsyncDir(path.dirname(target));
}

/**
 * A streaming atomic writer for large outputs (e.g. a generated JSONL file): `write` appends to the
 * temp file (buffered), `commit` fsyncs and renames, `abort` removes the temp file. Nothing appears at
 * `target` until `commit` succeeds.
 */
export class AtomicWriter {
  readonly tempPath: string;
  private fd: number;
  private buf: Buffer;
  private used = 0;
  private done = false;

  constructor(readonly target: string, bufferBytes = 1 << 20) {
    this.tempPath = tempPathFor(target);
    this.fd = fs.openSync(this.tempPath, 'w', 0o644);
    this.buf = Buffer.allocUnsafe(bufferBytes);
  }

  write(data: string | Uint8Array): void {
    if (this.done) throw new Error(`AtomicWriter(${this.target}): write after commit/abort`);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (this.used + bytes.length > this.buf.length) this.flush();
    if (bytes.length > this.buf.length) {
      this.writeAll(bytes);
      return;
    }
    this.buf.set(bytes, this.used);
    this.used += bytes.length;
  }

  private writeAll(bytes: Uint8Array): void {
    let off = 0;
    while (off < bytes.length) off += fs.writeSync(this.fd, bytes, off, bytes.length - off);
  }

  private flush(): void {
    if (this.used > 0) this.writeAll(this.buf.subarray(0, this.used));
    this.used = 0;
  }

  commit(): void {
    if (this.done) throw new Error(`AtomicWriter(${this.target}): already committed or aborted`);
    try {
      this.flush();
      fs.fsyncSync(this.fd);
      fs.closeSync(this.fd);
      this.done = true;
      fs.renameSync(this.tempPath, this.target);
    } catch (e) {
      this.abort();
      throw e;
    }
    fsyncDir(path.dirname(this.target));
  }

  abort(): void {
    if (!this.done) {
      this.done = true;
      try {
        fs.closeSync(this.fd);
      } catch {
        /* already closed */
      }
    }
    fs.rmSync(this.tempPath, { force: true });
  }
}
