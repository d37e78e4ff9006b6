#!/usr/bin/env bash
# Builds the native kernel tests with AddressSanitizer + UBSan and runs them with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build-native-tests
cmake -S . -B "$dir" -G Ninja -DQGS_NATIVE_TESTS=ON -DQGS_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$dir" -j 2
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir "$dir" --output-on-failure -j 2
