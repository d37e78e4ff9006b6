// Serialised user states, for keeping them in a shared store (Redis, a database) across replicas.
//
// Layout (little-endian), 24-byte header then the float32 payload:
//   0  u8[4]  magic "QGSS"
//   4  u16    format version (1)
//   6  u16    dtype (0 = float32)
//   8  u32    stateSize (floats)
//   12 u32    model tag hash (FNV-1a 32 of the backend's stateTag; 0 when it has none)
//   16 u32    CRC-32 of the payload bytes
//   20 u32    reserved (0)
//   24 f32[stateSize]
// Decoding rejects a wrong magic, version, dtype, size, model tag, length or checksum with a message
// saying which.
import * as zlib from 'zlib';

export const STATE_MAGIC = 'QGSS';
export const STATE_FORMAT_VERSION = 1;
export const STATE_HEADER_BYTES = 24;

const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** FNV-1a 32-bit hash of a string's UTF-16 code units (0 for undefined). */
export function tagHash(tag: string | undefined): number {
  if (tag === undefined) return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < tag.length; i++) {
    h ^= tag.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0 || 1; // a tagged model never hashes to the "no tag" value
}

let crcTable: Uint32Array | null = null;

/** CRC-32 (IEEE), zlib's when available (Node >= 20.15). */
export function crc32(bytes: Uint8Array): number {
  const z = zlib as unknown as { crc32?: (d: Uint8Array) => number };
  if (typeof z.crc32 === 'function') return z.crc32(bytes) >>> 0;
  if (crcTable === null) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function hex(x: number): string {
  return `0x${(x >>> 0).toString(16).padStart(8, '0')}`;
}

/** Serialises a state (header + little-endian float32 payload). */
export function encodeState(state: Float32Array, tag?: string): Uint8Array {
  const out = new Uint8Array(STATE_HEADER_BYTES + state.length * 4);
  const payload = out.subarray(STATE_HEADER_BYTES);
  if (littleEndian) {
    payload.set(new Uint8Array(state.buffer, state.byteOffset, state.byteLength));
  } else {
    const dv = new DataView(out.buffer, STATE_HEADER_BYTES);
    for (let i = 0; i < state.length; i++) dv.setFloat32(i * 4, state[i], true);
  }
  const h = new DataView(out.buffer, 0, STATE_HEADER_BYTES);
  for (let i = 0; i < 4; i++) out[i] = STATE_MAGIC.charCodeAt(i);
  h.setUint16(4, STATE_FORMAT_VERSION, true);
  h.setUint16(6, 0, true);
  h.setUint32(8, state.length, true);
  h.setUint32(12, tagHash(tag), true);
  h.setUint32(16, crc32(payload), true);
  h.setUint32(20, 0, true);
  return out;
}

export interface DecodeExpect {
  stateSize: number;
  tag?: string;
}

/** Parses and checks serialised state bytes against the model's stateSize and tag. */
export function decodeState(bytes: Uint8Array, expect: DecodeExpect, what = 'state'): Float32Array {
  if (!(bytes instanceof Uint8Array)) {
    throw new TypeError(`${what}: expected a Uint8Array (or Buffer) from exportState, got ${bytes === null ? 'null' : typeof bytes}`);
  }
  if (bytes.length < STATE_HEADER_BYTES) {
    throw new Error(`${what}: too short for a serialised state (${bytes.length} bytes; the header alone is ${STATE_HEADER_BYTES})`);
  }
  const magic = String.fromCharCode(bytes[0], bytes[1], bytes[2], bytes[3]);
  if (magic !== STATE_MAGIC) throw new Error(`${what}: not a serialised qgs user state (magic ${JSON.stringify(magic)}, expected "${STATE_MAGIC}")`);
  const h = new DataView(bytes.buffer, bytes.byteOffset, STATE_HEADER_BYTES);
  const version = h.getUint16(4, true);
  if (version !== STATE_FORMAT_VERSION) {
    throw new Error(`${what}: unsupported state format version ${version} (this qgs-engine reads version ${STATE_FORMAT_VERSION})`);
  }
  const dtype = h.getUint16(6, true);
  if (dtype !== 0) throw new Error(`${what}: unsupported state dtype code ${dtype} (expected 0 = float32)`);
  const n = h.getUint32(8, true);
  if (n !== expect.stateSize) {
    throw new Error(`${what}: state size mismatch: the bytes hold a state of ${n} floats, this model's states have ${expect.stateSize} (exported by a different model configuration?)`);
  }
  const tagGot = h.getUint32(12, true);
  const tagWant = tagHash(expect.tag);
  if (tagGot !== tagWant) {
    throw new Error(`${what}: model mismatch: the state was exported by a model with tag hash ${hex(tagGot)}, this model's is ${hex(tagWant)}`);
  }
  const want = STATE_HEADER_BYTES + n * 4;
  if (bytes.length !== want) throw new Error(`${what}: length mismatch: expected ${want} bytes for ${n} floats, got ${bytes.length} (truncated or padded)`);
  const payload = bytes.subarray(STATE_HEADER_BYTES);
  const crc = crc32(payload);
  if (crc !== h.getUint32(16, true)) throw new Error(`${what}: checksum mismatch (stored ${hex(h.getUint32(16, true))}, computed ${hex(crc)}): the bytes are corrupted`);
  const out = new Float32Array(n);
  if (littleEndian) {
    new Uint8Array(out.buffer).set(payload); // copy (a Buffer's slice() would be a view)
    return out;
  }
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
  return out;
}
