import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CsvParser, readCsv, readJsonl, readParquet } from '../src/data/readers';
import { readSessions } from '../src/data/sessions';
import { readKuaisarSearch, readKuaisarRec, readJdsearch, parseKeyword } from '../src/data/adapters';
import { validateRecord, type FeatureSpec } from '../src/data/schema';
import { writeParquet } from './fixtures/parquet-writer';

const FIX = path.join(__dirname, 'fixtures');
let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qgs-data-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('schema validation', () => {
  const ok = { user: 'u', ts: 1, query: { terms: [1] }, shown: [1, 2], clicks: [0, 1] };
  test('accepts a valid record and names the bad field otherwise', () => {
    expect(validateRecord(ok).shown).toEqual([1, 2]);
    expect(() => validateRecord({ ...ok, clicks: [1] })).toThrow(/^clicks: has 1 entries but 2 items are shown/);
    expect(() => validateRecord({ ...ok, user: '' })).toThrow(/^user: must be/);
    expect(() => validateRecord({ ...ok, query: {} })).toThrow(/^query: needs text or terms/);
    expect(() => validateRecord({ ...ok, query: { terms: [1.5] } })).toThrow(/^query\.terms\[0\]: must be an integer/);
    expect(() => validateRecord({ ...ok, shown: [1, null], clicks: [0, 0] })).toThrow(/^shown\[1\]/);
    expect(() => validateRecord({ ...ok, rel: [0, -1] })).toThrow(/^rel\[1\]: must be a finite number >= 0/);
    expect(() => validateRecord([])).toThrow(/^record: must be an object/);
  });
  test('features are checked against a spec', () => {
    const spec: FeatureSpec = {
      groups: [
        { name: 'num', kind: 'numeric', features: ['a', 'b'] },
        { name: 'cat', kind: 'categorical', features: ['c'] },
        { name: 'tags', kind: 'bag', features: ['t'] },
      ],
    };
    const features = { num: [1, 2, null, 4], cat: ['x', 7], tags: [[1, 2], []] };
    expect(validateRecord({ ...ok, features }, spec).features).toBe(features);
    expect(() => validateRecord({ ...ok, features: { ...features, num: [1, 2, 3] } }, spec)).toThrow(/features\.num: needs 2 items × 2 features = 4 values, got 3/);
    expect(() => validateRecord({ ...ok, features: { num: features.num, cat: features.cat } }, spec)).toThrow(/features\.tags: missing/);
    expect(() => validateRecord({ ...ok, features: { ...features, extra: [] } }, spec)).toThrow(/features\.extra: not declared/);
    expect(() => validateRecord({ ...ok, features: { ...features, tags: [[1], 5] } }, spec)).toThrow(/features\.tags\[1\]: must be a list of ids/);
  });
});

describe('JSONL', () => {
  test('valid records stream through; bad lines are counted with file:line', async () => {
    const f = path.join(FIX, 'sessions/sessions.jsonl');
    const s = readSessions(f);
    const recs = await s.toArray();
    expect(recs.map((r) => r.user)).toEqual(['u1', 'u1', 'u2', 'u3']);
    expect(recs[0].query).toEqual({ text: 'red shoes', terms: [4, 9] });
    expect(s.report.records).toBe(4);
    expect(s.report.bad).toBe(2);
    expect(s.report.badRecords[0]).toEqual({ location: `${f}:5`, message: expect.stringMatching(/^ts: must be a finite number/) });
    expect(s.report.badRecords[1].location).toBe(`${f}:6`);
    expect(s.report.badRecords[1].message).toMatch(/invalid JSON/);
    expect(s.report.summary()).toMatch(/4 records, 2 bad \(first: .*sessions\.jsonl:5: ts/);
  });
  test('strict mode fails on the first bad line, naming it', async () => {
    const f = path.join(FIX, 'sessions/sessions.jsonl');
    await expect(readSessions(f, { strict: true }).toArray()).rejects.toThrow(`${f}:5: ts: must be a finite number`);
  });
  test('a stream is single-use; a missing file rejects', async () => {
    const s = readJsonl(path.join(FIX, 'sessions/sessions.jsonl'));
    await s.toArray();
    await expect(s.toArray()).rejects.toThrow(/only once/);
    await expect(readJsonl(path.join(dir, 'missing.jsonl')).toArray()).rejects.toThrow(/ENOENT/);
  });
  test('streams a file far larger than one read chunk without collecting it', async () => {
    const f = path.join(dir, 'big.jsonl');
    const line = JSON.stringify({ user: 1, ts: 5, query: null, shown: [1, 2, 3], clicks: [0, 0, 1] });
    fs.writeFileSync(f, `${line}\n`.repeat(20000));
    let n = 0;
    const s = readSessions(f);
    for await (const r of s) n += r.clicks[2];
    expect(n).toBe(20000);
    expect(s.report.records).toBe(20000);
  });
});

describe('CSV', () => {
  test('RFC 4180: quotes, doubled quotes, delimiters and newlines in fields, CRLF, chunk boundaries', () => {
    const text = 'a,b,c\r\n"x, y","he said ""hi""","line1\nline2"\r\n1,,3\n"",z,"w"';
    const whole = new CsvParser();
    const all = [...whole.push(text), ...whole.end()];
    expect(all.map((r) => r.fields)).toEqual([
      ['a', 'b', 'c'],
      ['x, y', 'he said "hi"', 'line1\nline2'],
      ['1', '', '3'],
      ['', 'z', 'w'],
    ]);
    expect(all.map((r) => r.line)).toEqual([1, 2, 4, 5]);
    expect(all.every((r) => r.error === null)).toBe(true);
    // Same result for every split into two chunks (quotes and CRLF split across chunks).
    for (let cut = 0; cut <= text.length; cut++) {
      const p = new CsvParser();
      const recs = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut)), ...p.end()];
      expect(recs.map((r) => r.fields)).toEqual(all.map((r) => r.fields));
    }
  });
  test('malformed quoting is reported', () => {
    const p = new CsvParser();
    const recs = [...p.push('a"b,c\n"x"y,z\n"open'), ...p.end()];
    expect(recs.map((r) => r.error)).toEqual([
      'unexpected quote inside an unquoted field (field 1)',
      'text after the closing quote of field 1',
      'unterminated quoted field at end of file',
    ]);
    expect(() => new CsvParser('"')).toThrow(/delimiter/);
  });
  test('session CSV with a header mapping; bad rows at file:line', async () => {
    const f = path.join(FIX, 'sessions/sessions.csv');
    const s = readSessions(f, { columns: { user: 'uid', ts: 'time_ms' } });
    const recs = await s.toArray();
    expect(recs).toHaveLength(3);
    expect(recs[0]).toEqual({ user: 'u1', ts: 1700000000000, session: 's1', query: { text: 'red, "running" shoes', terms: [4, 9] }, shown: [10, 11, 12], clicks: [0, 1, 0] });
    expect(recs[1].query).toEqual({ text: 'multi\nline query' });
    expect(recs[1].shown).toEqual([11]);
    expect(recs[2].clicks).toEqual([0, 1]);
    expect(s.report.bad).toBe(2);
    expect(s.report.badRecords[0]).toEqual({ location: `${f}:5`, message: 'clicks: has 3 entries but 2 items are shown' });
    expect(s.report.badRecords[1]).toEqual({ location: `${f}:7`, message: 'text after the closing quote of field 4' });
  });
  test('wrong field counts are bad records; TSV and explicit header', async () => {
    const f = path.join(dir, 'x.tsv');
    fs.writeFileSync(f, '1\t2\n3\n4\t5\n');
    const s = readCsv(f, (r) => r, { delimiter: '\t', header: ['a', 'b'] });
    expect(await s.toArray()).toEqual([{ a: '1', b: '2' }, { a: '4', b: '5' }]);
    expect(s.report.badRecords).toEqual([{ location: `${f}:2`, message: 'expected 2 fields (per the header), got 1' }]);
  });
});

describe('Parquet (hyparquet), row group by row group', () => {
  test('flat session columns across several row groups; bad rows at file:rowGroup:row', async () => {
    const f = path.join(dir, 'sessions.parquet');
    writeParquet(
      f,
      [
        { name: 'user', type: 'INT64', values: [1n, 1n, 2n, 3n, 9007199254740993n] },
        { name: 'ts', type: 'DOUBLE', values: [10, 20, 30, 40, 50] },
        { name: 'query_terms', type: 'UTF8', values: ['1 2', '', '[3]', '4', '5'] },
        { name: 'shown', type: 'UTF8', values: ['[7,8]', '9', '7 8', '1', '2'] },
        { name: 'clicks', type: 'UTF8', values: ['[0,1]', '1', '0 0', '0 1', '0'] },
      ],
      2,
    );
    const s = readSessions(f);
    const recs = await s.toArray();
    expect(recs.map((r) => r.user)).toEqual([1, 1, 2, '9007199254740993']);
    expect(recs[0]).toEqual({ user: 1, ts: 10, query: { terms: [1, 2] }, shown: [7, 8], clicks: [0, 1] });
    expect(recs[1].query).toBeNull();
    // row 3 (group 1, row 1): 1 shown item, 2 clicks
    expect(s.report.badRecords).toEqual([{ location: `${f}:1:1`, message: 'clicks: has 2 entries but 1 items are shown' }]);
  });
  test('raw rows with a column subset; a non-Parquet file gives a clear error', async () => {
    const f = path.join(dir, 'two.parquet');
    writeParquet(f, [{ name: 'a', type: 'INT64', values: [1n, 2n, 3n] }, { name: 'b', type: 'UTF8', values: ['x', 'y', 'z'] }], 1);
    expect(await readParquet(f, (r) => r, { columns: ['b'] }).toArray()).toEqual([{ b: 'x' }, { b: 'y' }, { b: 'z' }]);
    const bad = path.join(dir, 'bad.parquet');
    fs.writeFileSync(bad, 'not parquet at all');
    await expect(readParquet(bad).toArray()).rejects.toThrow(/bad\.parquet: not a readable Parquet file/);
  });
});

describe('KuaiSAR adapter', () => {
  test('src_inter.csv: rows grouped into one record per search session', async () => {
    const f = path.join(FIX, 'kuaisar/src_inter.csv');
    const s = readKuaisarSearch(f);
    const recs = await s.toArray();
    expect(recs).toHaveLength(3);
    expect(recs[0]).toEqual({
      user: 14358,
      ts: 1684763932919,
      request: 1,
      query: { terms: [20, 34, 3] },
      shown: [103656000000, 103656000001, 5500],
      clicks: [1, 0, 0],
      features: { item: ['VIDEO', 'VIDEO', 'USER'], query_side: ['USER_INPUT', 'USER_INPUT', 'USER_INPUT'] },
    });
    expect(recs[1]).toMatchObject({ request: 2, ts: 1684764601000, query: { terms: [20, 7] }, shown: [42, 43], clicks: [0, 2] });
    expect(recs[2]).toMatchObject({ user: 901, request: 3, query: { terms: [] }, shown: [42] });
    for (const r of recs) validateRecord(r);
    expect(s.report.badRecords.map((b) => b.location)).toEqual([`${f}:6`, `${f}:9`]);
    expect(s.report.badRecords[0].message).toMatch(/item_id: expected an integer id/);
    expect(s.report.badRecords[1].message).toMatch(/search_session_id 1 appears again/);
    await expect(readKuaisarSearch(f, { strict: true }).toArray()).rejects.toThrow(`${f}:6: item_id`);
  });
  test('keyword parsing and a file that is not src_inter.csv', async () => {
    expect(parseKeyword('[20, 34, 3]')).toEqual([20, 34, 3]);
    expect(parseKeyword(' [] ')).toEqual([]);
    expect(() => parseKeyword('20 34')).toThrow(/expected a list/);
    await expect(readKuaisarSearch(path.join(FIX, 'kuaisar/rec_inter.csv')).toArray()).rejects.toThrow(/not a KuaiSAR src_inter\.csv: missing column\(s\) search_session_id/);
  });
  test('rec_inter.csv as query-less interactions', async () => {
    const recs = await readKuaisarRec(path.join(FIX, 'kuaisar/rec_inter.csv')).toArray();
    expect(recs).toEqual([
      { user: 14358, ts: 1684742000000, query: null, shown: [77], clicks: [1] },
      { user: 14358, ts: 1684742060000, query: null, shown: [78], clicks: [0] },
    ]);
  });
});

describe('JDsearch adapter', () => {
  test('history interactions then the test impression per line; bad lines reported', async () => {
    const f = path.join(FIX, 'jdsearch/release_data.txt');
    const s = readJdsearch(f);
    const recs = await s.toArray();
    // line 2 (README pseudo example): 3 history records + test; line 3: 1 + test
    expect(recs).toHaveLength(6);
    expect(recs[0]).toEqual({ user: 'jd:2', ts: 0, query: { terms: [323, 328, 196] }, shown: [889], clicks: [1], labels: [3] });
    expect(recs[1]).toEqual({ user: 'jd:2', ts: 12000, query: null, shown: [256], clicks: [1], labels: [1] });
    expect(recs[2]).toEqual({ user: 'jd:2', ts: 16000, query: { terms: [12, 54] }, shown: [345], clicks: [1], labels: [2] });
    expect(recs[3]).toEqual({ user: 'jd:2', ts: 21000, request: 'jd:2:test', query: { terms: [12, 32, 56] }, shown: [456, 457, 789], clicks: [1, 0, 0], labels: [3, 0, 0] });
    expect(recs[5]).toMatchObject({ user: 'jd:3', ts: 30000, shown: [1, 2], labels: [0, 1], clicks: [0, 1] });
    for (const r of recs) validateRecord(r);
    expect(s.report.badRecords).toEqual([
      { location: `${f}:4`, message: 'history_time_list has 2 gaps, expected 3 (one per behaviour plus the test query)' },
      { location: `${f}:5`, message: 'history_type_list[0]: unknown interaction type "BUY" (ORD, CLICK, CART, FLW)' },
    ]);
  });
});
