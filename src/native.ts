// Loads the native addon (CPU or CUDA build) and gives a typed view of the raw binding.
// QGS_DEVICE=auto|cpu|cuda picks the build: `auto` uses the CUDA build when one is present and a GPU
// answers, else falls back to the CPU build with a one-line reason; `cuda` fails loudly instead.
// Kernel families add their functions to NativeBinding by declaration merging in their own files.
import * as path from 'path';
import * as fs from 'fs';

export type Device = 'cpu' | 'cuda';
export type DType = 'f32' | 'i32';

/** The native object that owns a tensor's bytes (host or CUDA memory). */
export interface NativeStorage {
  readonly bytes: number;
  readonly device: Device | 'disposed';
  readonly disposed: boolean;
  dispose(): void;
  /** Zero-copy ArrayBuffer over host memory (cpu only); keeps the bytes alive while reachable. */
  hostView(): ArrayBuffer;
  copyFromHost(src: ArrayBufferView, byteOffset?: number): void;
  copyToHost(dst: ArrayBufferView, byteOffset?: number): void;
  copyFrom(src: NativeStorage): void;
  fill(value: number, dtype: DType): void;
}

export interface CudaInfo {
  built: boolean;
  devices: number;
  reason: string;
  name: string;
}

export interface BuildInfo {
  cuda: boolean;
  blas: string;
  sanitizers: boolean;
  physicalCores: number;
}

export interface NativeBinding {
  Storage: new (bytes: number, device: Device) => NativeStorage;
  liveStorage(): { count: number; bytes: number; cachedBytes: number; reportedBytes: number };
  releaseCachedMemory(): number;
  numThreads(): number;
  /** Most BLAS threads one (large) GEMM uses: the pool size unless QGS_BLAS_THREADS is set; small GEMMs use one. */
  blasThreads(): number;
  setNumThreads(n: number): number;
  /** Wakes the CPU pool's idle threads into their spin phase ahead of parallel work (serving requests). */
  poolWake(): void;
  cudaInfo(): CudaInfo;
  cudaSynchronize(): void;
  buildInfo(): BuildInfo;
  /** dst[i] += src[i] for i < n (f32). */
  addInto(dst: NativeStorage, src: NativeStorage, n: number): void;
}

export interface LoadedBinding {
  binding: NativeBinding;
  /** Path of the .node file that was loaded. */
  file: string;
  /** Whether CUDA tensors can be created with this binding. */
  cuda: boolean;
  /** Why CUDA is not available, when it is not. */
  cudaReason: string;
}

const packageRoot = path.resolve(__dirname, '..');

function findCpuAddon(): string {
  // node-gyp-build prefers build/Release (a local source build) over prebuilds/.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const nodeGypBuild = require('node-gyp-build') as { path(dir: string): string };
  return nodeGypBuild.path(packageRoot);
}

function findCudaAddon(): string | null {
  const local = path.join(packageRoot, 'build-cuda', 'Release', 'qgs.node');
  if (fs.existsSync(local) && !process.env.PREBUILDS_ONLY) return local;
  const dir = path.join(packageRoot, 'cuda', 'prebuilds', `${process.platform}-${process.arch}`);
  if (fs.existsSync(dir)) {
    const f = fs.readdirSync(dir).find((n) => n.endsWith('.node'));
    if (f) return path.join(dir, f);
  }
  return null;
}

function requireAddon(file: string): NativeBinding {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(file) as NativeBinding;
}

function load(): LoadedBinding {
  // OpenBLAS's idle worker threads spin (sched_yield) for ~2^28 cycles (~0.1 s) after every call,
  // competing with our thread pool and the JS thread for the cores: on 2 vCPUs that made a QGS
  // serving request ~2x slower (p50 17 -> 8 ms with the minimum). OpenBLAS reads this when the
  // library loads, i.e. on the require below; a value set by the user is kept.
  if (process.env.OPENBLAS_THREAD_TIMEOUT === undefined) process.env.OPENBLAS_THREAD_TIMEOUT = '4';
  const mode = (process.env.QGS_DEVICE ?? 'auto').toLowerCase();
  if (mode !== 'auto' && mode !== 'cpu' && mode !== 'cuda') {
    throw new Error(`QGS_DEVICE: expected 'auto', 'cpu' or 'cuda', got '${process.env.QGS_DEVICE}'`);
  }
  let reason = 'QGS_DEVICE=cpu';
  if (mode !== 'cpu') {
    const cudaFile = findCudaAddon();
    if (cudaFile === null) {
      reason = 'no CUDA build of the addon found (build:cuda or cuda/prebuilds)';
    } else {
      const b = requireAddon(cudaFile);
      const info = b.cudaInfo();
      if (info.devices > 0) return { binding: b, file: cudaFile, cuda: true, cudaReason: '' };
      reason = `CUDA build present but no GPU answered (${info.reason})`;
    }
    if (mode === 'cuda') throw new Error(`QGS_DEVICE=cuda: ${reason}`);
    if (findCudaAddon() !== null && !process.env.QGS_QUIET) process.stderr.write(`qgs-engine: using the CPU backend: ${reason}\n`);
  }
  const file = findCpuAddon();
  return { binding: requireAddon(file), file, cuda: false, cudaReason: reason };
}

let loaded: LoadedBinding | null = null;

/** The loaded addon (loaded on first use). */
export function native(): NativeBinding {
  if (loaded === null) loaded = load();
  return loaded.binding;
}

/** Which addon file was loaded and whether CUDA is usable. */
export function backendInfo(): LoadedBinding {
  native();
  return loaded as LoadedBinding;
}
