// linrec ops: filled in by their issue (see src/ops/index.ts).
export {};
