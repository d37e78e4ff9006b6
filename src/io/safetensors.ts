// safetensors checkpoints (https://github.com/huggingface/safetensors format): an 8-byte
// little-endian header length N, N bytes of JSON header {name: {dtype, shape, data_offsets}, ...,
// "__metadata__": {string: string}}, then the raw little-endian tensor bytes. We support F32 and I32
// (what the engine stores) and put our JSON config in __metadata__.config, a format version in
// __metadata__.qgs_format, and a CRC-32 of the data bytes in __metadata__.qgs_crc32 so that a
// corrupted payload is detected (the format itself has no checksum).
//
// Records are plain {dtype, shape, data} objects (no Tensor dependency), so model code adapts them.
// Loading validates everything before returning anything: a bad file throws, never half-loads.
import * as fs from 'fs';
import * as os from 'os';
import * as zlib from 'zlib';
import { writeFileAtomicSync } from './atomic';

export type SafeDType = 'F32' | 'I32';

export type TensorRecord =
  | { dtype: 'F32'; shape: readonly number[]; data: Float32Array }
  | { dtype: 'I32'; shape: readonly number[]; data: Int32Array };

export type TensorRecords = Readonly<Record<string, TensorRecord>>;

/** The format version this code writes; files with a newer version are refused. */
export const QGS_FORMAT_VERSION = 1;

export interface SafetensorsFile {
  tensors: Record<string, TensorRecord>;
  /** The JSON config stored with the tensors (undefined when the file has none). */
  config: unknown;
  /** Raw __metadata__ strings (includes qgs_format, qgs_crc32, config). */
  metadata: Record<string, string>;
}

/** Hard limit on the JSON header (the reference implementation uses 100 MB). */
const MAX_HEADER = 100 * 1024 * 1024;
const LITTLE_ENDIAN = os.endianness() === 'LE';

function shapeSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function checkName(name: string): void {
  if (name.length === 0 || name === '__metadata__') throw new Error(`safetensors: invalid tensor name ${JSON.stringify(name)}`);
}

/** Serialises tensors (+ optional JSON config) to safetensors bytes. */
export function encodeSafetensors(tensors: TensorRecords, config?: unknown, extraMetadata: Record<string, string> = {}): Uint8Array[] {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  const payload: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    checkName(name);
    const t = tensors[name];
    if (t.dtype !== 'F32' && t.dtype !== 'I32') throw new Error(`safetensors: tensor ${name}: dtype must be F32 or I32, got ${String((t as { dtype: unknown }).dtype)}`);
    for (const d of t.shape) {
      if (!Number.isInteger(d) || d < 0) throw new Error(`safetensors: tensor ${name}: shape [${t.shape.join(', ')}] must hold integers >= 0`);
    }
    const want = shapeSize(t.shape);
    const okType = t.dtype === 'F32' ? t.data instanceof Float32Array : t.data instanceof Int32Array;
    if (!okType) throw new Error(`safetensors: tensor ${name}: dtype ${t.dtype} needs ${t.dtype === 'F32' ? 'Float32Array' : 'Int32Array'} data`);
    if (t.data.length !== want) throw new Error(`safetensors: tensor ${name}: shape [${t.shape.join(', ')}] holds ${want} values, data has ${t.data.length}`);
    const bytes = toLittleEndianBytes(t.data);
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.length] };
    payload.push(bytes);
    offset += bytes.length;
  }
  let crc = 0;
  for (const p of payload) crc = zlib.crc32(p, crc);
  const meta: Record<string, string> = { ...extraMetadata, qgs_format: String(QGS_FORMAT_VERSION), qgs_crc32: String(crc >>> 0) };
  if (config !== undefined) meta.config = JSON.stringify(config);
  header.__metadata__ = meta;
  let json = JSON.stringify(header);
  // Pad with spaces so the data starts 8-byte aligned (as the reference writer does).
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - ((8 + jsonBytes) % 8)) % 8);
  const headBytes = Buffer.from(json, 'utf8');
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(headBytes.length));
  return [lenBuf, headBytes, ...payload];
}

function toLittleEndianBytes(data: Float32Array | Int32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new DataView(new ArrayBuffer(data.byteLength));
  for (let i = 0; i < data.length; i++) {
    if (data instanceof Float32Array) out.setFloat32(i * 4, data[i], true);
    else out.setInt32(i * 4, data[i], true);
  }
  return new Uint8Array(out.buffer);
}

/** Writes a checkpoint atomically (temp file + fsync + rename). */
export function saveSafetensors(file: string, tensors: TensorRecords, config?: unknown): void {
  writeFileAtomicSync(file, encodeSafetensors(tensors, config));
}

/** Reads and validates a checkpoint file. */
export function loadSafetensors(file: string): SafetensorsFile {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new Error(`safetensors: cannot read ${file}: ${(e as Error).message}`);
  }
  return decodeSafetensors(bytes, file);
}

interface HeaderEntry {
  name: string;
  dtype: SafeDType;
  shape: number[];
  begin: number;
  end: number;
}

/** Parses and validates safetensors bytes; `source` names the file in error messages. */
export function decodeSafetensors(bytes: Uint8Array, source = '<buffer>'): SafetensorsFile {
  const fail = (msg: string): never => {
    throw new Error(`safetensors: ${source}: ${msg}`);
  };
  if (bytes.length < 8) fail(`file is ${bytes.length} bytes, shorter than the 8-byte header length (truncated?)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen64 = view.getBigUint64(0, true);
  if (headerLen64 > BigInt(MAX_HEADER)) fail(`header length ${headerLen64} exceeds the ${MAX_HEADER}-byte limit (not a safetensors file?)`);
  const headerLen = Number(headerLen64);
  if (8 + headerLen > bytes.length) fail(`header length ${headerLen} runs past the end of the ${bytes.length}-byte file (truncated?)`);
  const text = Buffer.from(bytes.buffer, bytes.byteOffset + 8, headerLen).toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    return fail(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return fail('header must be a JSON object');
  const obj = parsed as Record<string, unknown>;
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;

  const metadata: Record<string, string> = {};
  const rawMeta = obj.__metadata__;
  if (rawMeta !== undefined) {
    if (typeof rawMeta !== 'object' || rawMeta === null || Array.isArray(rawMeta)) fail('__metadata__ must be an object of strings');
    for (const [k, v] of Object.entries(rawMeta as Record<string, unknown>)) {
      if (typeof v !== 'string') fail(`__metadata__.${k} must be a string, got ${typeof v}`);
      metadata[k] = v as string;
    }
  }
  if (metadata.qgs_format !== undefined) {
    const v = Number(metadata.qgs_format);
    if (!Number.isInteger(v) || v < 1) fail(`__metadata__.qgs_format must be a positive integer, got ${JSON.stringify(metadata.qgs_format)}`);
    if (v > QGS_FORMAT_VERSION) fail(`format version ${v} is newer than this library supports (${QGS_FORMAT_VERSION}); upgrade qgs-engine`);
  }

  const entries: HeaderEntry[] = [];
  for (const [name, raw] of Object.entries(obj)) {
    if (name === '__metadata__') continue;
    if (typeof raw !== 'object' || raw === null) fail(`tensor ${name}: entry must be an object`);
    const e = raw as Record<string, unknown>;
    if (e.dtype !== 'F32' && e.dtype !== 'I32') fail(`tensor ${name}: dtype ${JSON.stringify(e.dtype)} is not supported (F32, I32)`);
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) fail(`tensor ${name}: shape must be an array of integers >= 0, got ${JSON.stringify(shape)}`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isInteger(d) && d >= 0)) {
      fail(`tensor ${name}: data_offsets must be [begin, end] integers, got ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as number[];
    if (end < begin) fail(`tensor ${name}: data_offsets [${begin}, ${end}] are reversed`);
    if (end > dataLen) fail(`tensor ${name}: data_offsets end ${end} is past the ${dataLen} data bytes (truncated?)`);
    const want = shapeSize(shape as number[]) * 4;
    if (end - begin !== want) fail(`tensor ${name}: shape [${(shape as number[]).join(', ')}] needs ${want} bytes, data_offsets span ${end - begin}`);
    entries.push({ name, dtype: e.dtype as SafeDType, shape: shape as number[], begin, end });
  }
  // The format requires the tensors to tile the data section exactly: no gaps, no overlap.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const e of entries) {
    if (e.begin !== cursor) fail(`tensor ${e.name}: data starts at ${e.begin}, expected ${cursor} (gap or overlap in data_offsets)`);
    cursor = e.end;
  }
  if (cursor !== dataLen) fail(`tensors cover ${cursor} data bytes but the file has ${dataLen} (trailing bytes or truncated)`);
  if (metadata.qgs_crc32 !== undefined) {
    const crc = zlib.crc32(bytes.subarray(dataStart)) >>> 0;
    if (String(crc) !== metadata.qgs_crc32) fail(`data checksum mismatch (crc32 ${crc}, header says ${metadata.qgs_crc32}): the file is corrupted`);
  }
  let config: unknown = undefined;
  if (metadata.config !== undefined) {
    try {
      config = JSON.parse(metadata.config);
    } catch (e) {
      fail(`__metadata__.config is not valid JSON (${(e as Error).message})`);
    }
  }
  // Only now materialise the arrays (copies: aligned, and independent of the file buffer).
  const tensors: Record<string, TensorRecord> = {};
  for (const e of entries) {
    const n = (e.end - e.begin) / 4;
    const src = bytes.subarray(dataStart + e.begin, dataStart + e.end);
    if (e.dtype === 'F32') {
      const data = new Float32Array(n);
      copyLE(src, data);
      tensors[e.name] = { dtype: 'F32', shape: e.shape, data };
    } else {
      const data = new Int32Array(n);
      copyLE(src, data);
      tensors[e.name] = { dtype: 'I32', shape: e.shape, data };
    }
  }
  return { tensors, config, metadata };
}

function copyLE(src: Uint8Array, dst: Float32Array | Int32Array): void {
  if (LITTLE_ENDIAN) {
    new Uint8Array(dst.buffer).set(src);
    return;
  }
  const v = new DataView(src.buffer, src.byteOffset, src.byteLength);
  for (let i = 0; i < dst.length; i++) dst[i] = dst instanceof Float32Array ? v.getFloat32(i * 4, true) : v.getInt32(i * 4, true);
}
