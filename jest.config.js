/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['@swc/jest', { jsc: { target: 'es2022', parser: { syntax: 'typescript' } } }] },
  // Native kernels use the shared thread pool; parallel jest workers would oversubscribe 2 cores.
  maxWorkers: 1,
  testTimeout: 120000,
};
