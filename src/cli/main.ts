#!/usr/bin/env node
// The `qgs` command line (package.json "bin"). Commands live in modules registered through
// ./registry (see ./commands.ts); this file only wires them to process I/O.
import * as fs from 'fs';
import * as path from 'path';
import { CommanderError } from 'commander';
import './commands';
import { createProgram } from './registry';
import { type CliIO, processIO } from './io';

function packageVersion(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** Runs the CLI on `argv` (without the node and script entries); resolves to the exit code. */
export async function runCli(argv: readonly string[], io: CliIO = processIO): Promise<number> {
  const program = createProgram(io, packageVersion());
  program.exitOverride();
  for (const c of program.commands) c.exitOverride();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode; // commander already printed the message
    io.err(`qgs: ${(e as Error).message}`);
    return 1;
  }
}

if (require.main === module) {
  void runCli(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
