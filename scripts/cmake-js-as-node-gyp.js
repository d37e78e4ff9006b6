#!/usr/bin/env node
// Lets prebuildify drive cmake-js: prebuildify calls `<node-gyp> rebuild ...`; we run
// `cmake-js rebuild` (plus CMAKE_JS_EXTRA flags, e.g. --CDQGS_CUDA=ON) into build/.
'use strict';
const { spawnSync } = require('child_process');
const extra = (process.env.CMAKE_JS_EXTRA || '').split(/\s+/).filter(Boolean);
const bin = require.resolve('cmake-js/bin/cmake-js');
const r = spawnSync(process.execPath, [bin, 'rebuild', '--out', 'build', ...extra], { stdio: 'inherit' });
process.exit(r.status === null ? 1 : r.status);
