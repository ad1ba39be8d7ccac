/** Unit tests cover the DOM-free modules (models, formatting, chart geometry). */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src'],
  testRegex: 'src/__tests__/.*\\.spec\\.ts$',
  transform: {
    '^.+\\.ts$': [
      'ts-jest',
      {
        tsconfig: {
          module: 'commonjs',
          target: 'ES2019',
          lib: ['DOM', 'ES2019'],
          strict: true,
          esModuleInterop: true,
          skipLibCheck: true,
          types: ['jest', 'node']
        }
      }
    ]
  }
};
