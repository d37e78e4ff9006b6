import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Command } from 'commander';
import { runCli } from '../src/cli/main';
import { registerCommand, registeredCommands, createProgram } from '../src/cli/registry';
import { printRows } from '../src/cli/io';
import { readSessions } from '../src/data/sessions';
import { SYNTHETIC_FEATURE_SPEC } from '../src/data/synthetic';
import { captureIO } from './helpers';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qgs-cli-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const TINY = ['--users', '20', '--items', '100', '--topics', '4'];

describe('qgs CLI (in-process)', () => {
  test('--help lists generate; every command has --help', async () => {
    const io = captureIO();
    expect(await runCli(['--help'], io)).toBe(0);
    const help = io.stdout.join('');
    expect(help).toMatch(/Usage: qgs/);
    expect(help).toMatch(/generate/);
    const io2 = captureIO();
    expect(await runCli(['generate', '--help'], io2)).toBe(0);
    expect(io2.stdout.join('')).toMatch(/--seed <n>[\s\S]*--json/);
  });
  test('generate --json prints one machine-readable stats row; same seed, same numbers', async () => {
    const run = async (): Promise<Record<string, unknown>> => {
      const io = captureIO();
      expect(await runCli(['generate', ...TINY, '--seed', '3', '--json'], io)).toBe(0);
      expect(io.stdout).toHaveLength(1);
      return JSON.parse(io.stdout[0]) as Record<string, unknown>;
    };
    const a = await run();
    expect(a).toMatchObject({ seed: 3, users: 20, items: 100 });
    expect(typeof a.ctr).toBe('number');
    const b = await run();
    delete a.ms;
    delete b.ms;
    expect(b).toEqual(a);
  });
  test('generate --out writes JSONL + meta atomically; the file reads back with the spec', async () => {
    const out = path.join(dir, 'sessions.jsonl');
    const io = captureIO();
    expect(await runCli(['generate', ...TINY, '--out', out, '--truth', path.join(dir, 'truth.json')], io)).toBe(0);
    expect(io.stdout.join('\n')).toMatch(/requests/);
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'sessions.meta.json'), 'utf8'));
    expect(meta.format).toBe('qgs-synthetic-sessions');
    expect(meta.options.users).toBe(20);
    expect(meta.catalogue.titles).toHaveLength(100);
    const s = readSessions(out, { spec: SYNTHETIC_FEATURE_SPEC, strict: true });
    const recs = await s.toArray();
    expect(recs.length).toBe(meta.stats.requests);
    expect(s.report.bad).toBe(0);
    const truth = JSON.parse(fs.readFileSync(path.join(dir, 'truth.json'), 'utf8'));
    expect(truth.requests).toHaveLength(recs.length);
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
  test('--reference --json adds one row per reference scorer', async () => {
    const io = captureIO();
    expect(await runCli(['generate', ...TINY, '--reference', '--json'], io)).toBe(0);
    const rows = io.stdout.map((l) => JSON.parse(l) as { scorer?: string; gauc?: number });
    expect(rows.slice(1).map((r) => r.scorer)).toEqual(['random', 'production', 'bm25', 'item_ctr', 'lr_features', 'lr_pooled', 'lr_query_conditioned', 'oracle_no_history', 'oracle_no_query', 'oracle_full']);
  });
  test('bad arguments give a clear error and a non-zero exit code', async () => {
    const io = captureIO();
    expect(await runCli(['generate', '--users', 'abc'], io)).not.toBe(0);
    expect(io.stderr.join('')).toMatch(/--users must be an integer, got "abc"/);
    const io2 = captureIO();
    expect(await runCli(['frobnicate'], io2)).not.toBe(0);
    expect(io2.stderr.join('')).toMatch(/unknown command 'frobnicate'/);
    const io3 = captureIO();
    expect(await runCli(['generate', ...TINY, '--out', path.join(dir, 'no/such/dir/x.jsonl')], io3)).toBe(1);
    expect(io3.stderr.join('')).toMatch(/^qgs: .*ENOENT/);
  });
});

describe('command registry (the extension point for train/eval/rank/demo)', () => {
  test('a registered command appears in the program and runs', async () => {
    registerCommand('hello', (program, io) => {
      program
        .command('hello')
        .description('test command')
        .option('--json', 'JSON rows')
        .action((o: { json?: boolean }) => printRows(io, [{ model: 'x', gauc: 0.5 }], o.json === true));
    });
    expect(registeredCommands()).toEqual(['generate', 'demo', 'train', 'eval', 'rank', 'study', 'hello']);
    const io = captureIO();
    expect(await runCli(['hello', '--json'], io)).toBe(0);
    expect(io.stdout).toEqual(['{"model":"x","gauc":0.5}']);
    const io2 = captureIO();
    await runCli(['hello'], io2);
    expect(io2.stdout).toEqual(['model    gauc', '-----  ------', 'x      0.5000']);
  });
  test('tables print metrics with 4 decimals, durations (*_s, *_ms) with 1, null as -', () => {
    const io = captureIO();
    printRows(io, [{ model: 'a', gauc: 0.68331, train_s: 41.25, p99_ms: 2, note: null }], false);
    expect(io.stdout[2].split(/\s+/)).toEqual(['a', '0.6833', '41.3', '2', '-']);
  });
  test('duplicate or malformed registrations are refused', () => {
    expect(() => registerCommand('generate', () => undefined)).toThrow(/already registered/);
    expect(() => registerCommand('Bad Name', () => undefined)).toThrow(/invalid command name/);
    registerCommand('liar', (program: Command) => void program.command('other'));
    expect(() => createProgram(captureIO())).toThrow(/must add exactly one command named "liar"/);
  });
});

describe('compiled bin (dist/cli/main.js)', () => {
  const root = path.join(__dirname, '..');
  beforeAll(() => {
    // tsc of the TypeScript sources takes a few seconds; the native addon is not needed here.
    execFileSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', path.join(root, 'tsconfig.build.json')], { stdio: 'pipe' });
  });
  test('starts with a node shebang and runs --help and generate --json', () => {
    const main = path.join(root, 'dist/cli/main.js');
    expect(fs.readFileSync(main, 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
    const help = spawnSync(process.execPath, [main, '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/generate/);
    const gen = spawnSync(process.execPath, [main, 'generate', ...TINY, '--json'], { encoding: 'utf8' });
    expect(gen.status).toBe(0);
    expect(JSON.parse(gen.stdout.trim())).toMatchObject({ users: 20, items: 100 });
    const bad = spawnSync(process.execPath, [main, 'generate', '--seed', 'x'], { encoding: 'utf8' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/--seed must be an integer/);
  });
});
