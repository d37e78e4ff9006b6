// Writes dist/index.mjs: an ES module that re-exports the CommonJS build's named exports, so both
// `import { tensor } from 'qgs-engine'` and `require('qgs-engine')` work with one implementation.
'use strict';
const fs = require('fs');
const path = require('path');
const dist = path.join(__dirname, '..', 'dist');
const names = Object.keys(require(path.join(dist, 'index.js'))).filter((n) => n !== 'default' && n !== '__esModule');
const body = [
  "import cjs from './index.js';",
  ...names.map((n) => `export const ${n} = cjs.${n};`),
  'export default cjs;',
  '',
].join('\n');
const tmp = path.join(dist, 'index.mjs.tmp');
fs.writeFileSync(tmp, body);
fs.renameSync(tmp, path.join(dist, 'index.mjs'));
