// The command registry: the extension point through which other modules (training, evaluation,
// serving, demo) add `qgs` subcommands without editing the CLI core. A module calls
// registerCommand(...) at load time and is imported from src/cli/commands.ts.
import { Command, InvalidArgumentError } from 'commander';
import type { CliIO } from './io';

/** Adds one subcommand to `program` (e.g. program.command('train')...action(...)). Commands that
 * print results must offer `--json` (see printRows). */
export type CommandRegistrar = (program: Command, io: CliIO) => void;

const registrars = new Map<string, CommandRegistrar>();

/** Registers a subcommand under `name` (a second registration of the same name is an error). */
export function registerCommand(name: string, register: CommandRegistrar): void {
  if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new Error(`registerCommand: invalid command name ${JSON.stringify(name)}`);
  if (registrars.has(name)) throw new Error(`registerCommand: command ${JSON.stringify(name)} is already registered`);
  registrars.set(name, register);
}

/** Names registered so far, in registration order. */
export function registeredCommands(): string[] {
  return [...registrars.keys()];
}

/** Builds the `qgs` program with every registered command. */
export function createProgram(io: CliIO, version = '0.0.0'): Command {
  const program = new Command('qgs')
    .description('qgs-engine: train, evaluate and serve query-conditioned generative search rankers')
    .version(version)
    .showHelpAfterError()
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });
  for (const [name, register] of registrars) {
    const before = program.commands.length;
    register(program, io);
    const added = program.commands.slice(before);
    if (added.length !== 1 || added[0].name() !== name) {
      throw new Error(`registerCommand(${JSON.stringify(name)}): the registrar must add exactly one command named ${JSON.stringify(name)}`);
    }
  }
  return program;
}

/** Commander argument parsers with clear errors. */
export function intOption(name: string, min = -Infinity): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`${name} must be an integer, got ${JSON.stringify(v)}`);
    if (n < min) throw new InvalidArgumentError(`${name} must be >= ${min}, got ${n}`);
    return n;
  };
}

export function numberOption(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number, got ${JSON.stringify(v)}`);
    return n;
  };
}
