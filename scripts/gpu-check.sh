#!/usr/bin/env bash
# GPU verification (run on a lent GPU machine; see shared/gpu/README.md). Here, first:
#   npm run build:cuda && npx tsc -p tsconfig.build.json && bash ../shared/gpu/prepare.sh
# then with the device tool:
#   bash .gpu/on-gpu.sh bash scripts/gpu-check.sh
#   carry: [".gpu", "build-cuda", "build", "dist", "node_modules/node-gyp-build"]
# It runs every test-gpu/*.test.js (CUDA results vs the CPU kernels, fresh random inputs) with the
# CUDA build forced, and copies the log to $OUT when that exists.
set -uo pipefail
cd "$(dirname "$0")/.."
export QGS_DEVICE=cuda
log=${OUT:-/tmp}/gpu-check.log
node -e "const q=require('./dist'); const b=q.backendInfo(); console.log('backend', b.file, 'cuda', b.cuda, require('./dist/native').native().cudaInfo())" 2>&1 | tee "$log"
node --test test-gpu/ 2>&1 | tee -a "$log"
exit "${PIPESTATUS[0]}"
