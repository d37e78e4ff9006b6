// Every module that adds a `qgs` subcommand is imported here (the import runs its
// registerCommand call). To add a command: write src/<module>/cli.ts that calls
// registerCommand('<name>', (program, io) => { program.command('<name>')... }) and import it below.
import './generate';
import '../qgs/cli';
