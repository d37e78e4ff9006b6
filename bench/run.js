// `npm run bench`: runs every suite in bench/suites (or those named on the command line) in one
// process, printing ratio tables and writing bench/results/*.json.
'use strict';
const path = require('path');
const fs = require('fs');

async function main() {
  const only = process.argv.slice(2);
  const dir = path.join(__dirname, 'suites');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.js')).sort();
  const q = require('../dist');
  const info = q.backendInfo();
  const nat = require('../dist/native').native();
  console.log(`qgs-engine bench: addon ${path.relative(process.cwd(), info.file)}, threads ${nat.numThreads()} (BLAS up to ${nat.blasThreads()}, 1 below 2^24 multiply-adds), OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? '(unset)'}`);
  for (const f of files) {
    const name = f.replace(/\.js$/, '');
    if (only.length && !only.includes(name)) continue;
    const suite = require(path.join(dir, f));
    console.log(`\n# suite ${name}`);
    await suite.run();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
