import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { saveSafetensors, loadSafetensors, encodeSafetensors, decodeSafetensors, QGS_FORMAT_VERSION, type TensorRecords } from '../src/io/safetensors';
import { writeFileAtomicSync, AtomicWriter } from '../src/io/atomic';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qgs-st-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const sample: TensorRecords = {
  'enc.w': { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1, -2.5, 3, 0, 1e-8, -0]) },
  'vocab.ids': { dtype: 'I32', shape: [4], data: Int32Array.from([7, -1, 2147483647, -2147483648]) },
  empty: { dtype: 'F32', shape: [0, 5], data: new Float32Array(0) },
};

function concat(parts: Uint8Array[]): Buffer {
  return Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
}

describe('safetensors', () => {
  test('round trip with config, files left in place are only the target', () => {
    const f = path.join(dir, 'model.safetensors');
    saveSafetensors(f, sample, { model: 'qgs', d: 32, layers: [1, 2] });
    const r = loadSafetensors(f);
    expect(Object.keys(r.tensors).sort()).toEqual(['empty', 'enc.w', 'vocab.ids']);
    expect(Array.from(r.tensors['enc.w'].data)).toEqual(Array.from(sample['enc.w'].data));
    expect(r.tensors['enc.w'].shape).toEqual([2, 3]);
    expect(r.tensors['vocab.ids'].data).toBeInstanceOf(Int32Array);
    expect(Array.from(r.tensors['vocab.ids'].data)).toEqual([7, -1, 2147483647, -2147483648]);
    expect(r.tensors.empty.shape).toEqual([0, 5]);
    expect(r.config).toEqual({ model: 'qgs', d: 32, layers: [1, 2] });
    expect(r.metadata.qgs_format).toBe(String(QGS_FORMAT_VERSION));
    expect(fs.readdirSync(dir)).toEqual(['model.safetensors']);
  });

  test('layout follows the spec: u64 LE header length, JSON header, 8-byte aligned little-endian data', () => {
    const bytes = concat(encodeSafetensors({ a: { dtype: 'F32', shape: [1], data: Float32Array.from([1]) } }));
    const n = Number(bytes.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    expect(header.a).toEqual({ dtype: 'F32', shape: [1], data_offsets: [0, 4] });
    // 1.0f little endian = 00 00 80 3f
    expect(Array.from(bytes.subarray(8 + n))).toEqual([0x00, 0x00, 0x80, 0x3f]);
  });

  test('reads a file written by another implementation (no qgs metadata)', () => {
    // Hand-built: header {"x":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}, data 5, -3
    const json = Buffer.from('{"x":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}', 'utf8');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    const data = Buffer.alloc(8);
    data.writeInt32LE(5, 0);
    data.writeInt32LE(-3, 4);
    const r = decodeSafetensors(Buffer.concat([len, json, data]));
    expect(Array.from(r.tensors.x.data)).toEqual([5, -3]);
    expect(r.config).toBeUndefined();
  });

  test('truncated and corrupted files give clear errors', () => {
    const good = concat(encodeSafetensors(sample, { a: 1 }));
    expect(() => decodeSafetensors(good.subarray(0, 5), 'm.st')).toThrow(/m\.st: .*shorter than the 8-byte header/);
    expect(() => decodeSafetensors(good.subarray(0, 40), 'm.st')).toThrow(/runs past the end.*truncated/);
    expect(() => decodeSafetensors(good.subarray(0, good.length - 4), 'm.st')).toThrow(/past the .* data bytes \(truncated\?\)|truncated/);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 10] ^= 0x40;
    expect(() => decodeSafetensors(flipped, 'm.st')).toThrow(/checksum mismatch.*corrupted/);
    const trailing = Buffer.concat([good, Buffer.alloc(4)]);
    expect(() => decodeSafetensors(trailing, 'm.st')).toThrow(/trailing bytes/);
    const huge = Buffer.alloc(16);
    huge.writeBigUInt64LE(1n << 40n);
    expect(() => decodeSafetensors(huge)).toThrow(/exceeds/);
  });

  test('header validation: dtype, shape/offset mismatch, gaps, version, bad JSON', () => {
    const build = (header: object, dataBytes: number): Buffer => {
      const json = Buffer.from(JSON.stringify(header), 'utf8');
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      return Buffer.concat([len, json, Buffer.alloc(dataBytes)]);
    };
    expect(() => decodeSafetensors(build({ x: { dtype: 'F16', shape: [2], data_offsets: [0, 4] } }, 4))).toThrow(/dtype "F16" is not supported/);
    expect(() => decodeSafetensors(build({ x: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8))).toThrow(/needs 12 bytes, data_offsets span 8/);
    expect(() => decodeSafetensors(build({ x: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, 8))).toThrow(/gap or overlap/);
    expect(() => decodeSafetensors(build({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4))).toThrow(/shape must be/);
    expect(() =>
      decodeSafetensors(build({ __metadata__: { qgs_format: String(QGS_FORMAT_VERSION + 1) }, x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 4)),
    ).toThrow(/newer than this library supports/);
    expect(() => decodeSafetensors(build({ __metadata__: { config: '{oops' } }, 0))).toThrow(/config is not valid JSON/);
    const bad = Buffer.from(build({}, 0));
    bad.write('[', 8);
    expect(() => decodeSafetensors(bad)).toThrow(/header is not valid JSON|must be a JSON object/);
  });

  test('encode rejects inconsistent records', () => {
    expect(() => encodeSafetensors({ a: { dtype: 'F32', shape: [2], data: new Float32Array(3) } })).toThrow(/holds 2 values, data has 3/);
    expect(() => encodeSafetensors({ a: { dtype: 'I32', shape: [1], data: new Float32Array(1) as unknown as Int32Array } })).toThrow(/needs Int32Array/);
    expect(() => encodeSafetensors({ __metadata__: { dtype: 'F32', shape: [0], data: new Float32Array(0) } })).toThrow(/invalid tensor name/);
  });

  test('a missing file names the path', () => {
    expect(() => loadSafetensors(path.join(dir, 'nope.safetensors'))).toThrow(/cannot read .*nope\.safetensors/);
  });
});

describe('atomic writes', () => {
  test('writeFileAtomicSync replaces the whole file and leaves no temp files', () => {
    const f = path.join(dir, 'a.txt');
    writeFileAtomicSync(f, 'old');
    writeFileAtomicSync(f, ['new ', Buffer.from('content')]);
    expect(fs.readFileSync(f, 'utf8')).toBe('new content');
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
  test('AtomicWriter: nothing at the target until commit; abort keeps the old file', () => {
    const f = path.join(dir, 'b.jsonl');
    writeFileAtomicSync(f, 'previous\n');
    const w = new AtomicWriter(f, 8);
    w.write('line one\n');
    w.write('2\n');
    expect(fs.readFileSync(f, 'utf8')).toBe('previous\n');
    w.abort();
    expect(fs.readFileSync(f, 'utf8')).toBe('previous\n');
    expect(fs.existsSync(w.tempPath)).toBe(false);
    const w2 = new AtomicWriter(f, 8);
    for (let i = 0; i < 100; i++) w2.write(`${i}\n`);
    w2.commit();
    expect(fs.readFileSync(f, 'utf8').split('\n').length).toBe(101);
    expect(() => w2.write('x')).toThrow(/after commit/);
  });
});
