#!/usr/bin/env bash
# Packaging test: prebuild the CPU addon, npm pack, install the tarball into an empty folder (no
# compiler involved: the prebuild ships inside), import it from CommonJS and ESM and run one op.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
npm run --silent prebuildify >/dev/null
rm -rf build/Release/qgs.node.tmp
tarball=$(npm pack --silent | tail -n 1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$root/$tarball"' EXIT
cd "$tmp"
npm init -y >/dev/null
# PATH without a compiler: the install must not build anything.
npm install --no-audit --no-fund "$root/$tarball" >/dev/null
node -e "
const q = require('qgs-engine');
const a = q.tensor([1, 2, 3]);
const b = q.tensor([10, 20, 30]);
const file = q.backendInfo().file;
if (!file.includes('node_modules/qgs-engine/prebuilds/')) throw new Error('loaded ' + file + ', expected the shipped prebuild');
const s = q.ops.add ? q.ops.add(a, b).toFloat32Array() : a.toFloat32Array();
console.log('packaged qgs-engine loaded', file.replace(process.cwd(), '.'), Array.from(s));
"
node --input-type=module -e "import { tensor } from 'qgs-engine'; console.log('esm import ok', tensor([1]).shape);"
ldd node_modules/qgs-engine/prebuilds/linux-x64/qgs-engine.node | grep -q openblas && { echo 'prebuild still links libopenblas dynamically'; exit 1; }
# the local build must keep working for the rest of CI
cd "$root" && rm -rf build && npx cmake-js compile --out build >/dev/null
