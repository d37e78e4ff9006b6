/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } } }],
    // hyparquet ships only ES modules; jest (CommonJS mode, Node < 24.9) cannot load those, so it is
    // compiled to CommonJS for tests. Production code loads it with a real import().
    '/node_modules/hyparquet/.+\\.js$': ['@swc/jest', { jsc: { target: 'es2022' }, module: { type: 'commonjs' } }],
  },
  transformIgnorePatterns: ['/node_modules/(?!hyparquet/)'],
  // Native kernels use the shared thread pool; parallel jest workers would oversubscribe 2 cores.
  maxWorkers: 1,
  testTimeout: 120000,
};
