// The differentiable ops, exported as `ops.*` from the package root. One file per family; each op is
// a thin typed wrapper that validates arguments, calls a native kernel and records its backward rule.
export * from './elementwise';
export * from './reduce';
export * from './movement';
export * from './linalg';
export * from './nn';
export * from './losses';
export * from './linrec';
export * from './linear-hstu-step';
export * from './linear-hstu-encoder-plan';
export * from './linear-hstu-block';
export * from './embedding-bag';
export * from './hstu';
export * from './hfg';
export * from './policy';
