// Typed view of the optimiser kernels (native/include/qgs/optim.h). Optimisers are the only users.

declare module '../native' {
  interface NativeBinding {
    adamwStep(
      p: NativeStorage, m: NativeStorage, v: NativeStorage, g: NativeStorage, n: number, lr: number, beta1: number,
      beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number,
    ): void;
    sparseAdamStep(
      p: NativeStorage, m: NativeStorage, v: NativeStorage, rows: NativeStorage, g: NativeStorage, nrows: number, vocab: number,
      dim: number, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number,
    ): void;
    sparseAdagradStep(
      p: NativeStorage, acc: NativeStorage, rows: NativeStorage, g: NativeStorage, nrows: number, vocab: number, dim: number,
      lr: number, eps: number, weightDecay: number,
    ): void;
    sumSquares(x: NativeStorage, n: number): number;
    scaleInplace(x: NativeStorage, n: number, s: number): void;
  }
}

export {};
