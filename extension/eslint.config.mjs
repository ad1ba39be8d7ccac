// ESLint for the extension's TypeScript (`npm run lint`): typescript-eslint's recommended rules, plus the house rules
// of CONVENTIONS.md (no `any`, no `console.log`) and the checks that catch a forgotten promise. Formatting is
// Prettier's (`.prettierrc.json`), not ESLint's.
import eslint from '@eslint/js';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['lib/**', 'node_modules/**'] },
  {
    files: ['src/**/*.ts'],
    extends: [eslint.configs.recommended, tseslint.configs.recommended],
    languageOptions: {
      parserOptions: { project: './tsconfig.eslint.json', tsconfigRootDir: import.meta.dirname }
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-namespace': 'off', // lumino and JupyterLab group constants in namespaces (CommandIDs)
      'no-console': ['error', { allow: ['warn', 'error'] }],
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { args: 'none' }],
      '@typescript-eslint/naming-convention': [
        'error',
        { selector: 'interface', format: ['PascalCase'], custom: { regex: '^I[A-Z]', match: true } }
      ],
      curly: 'error',
      eqeqeq: ['error', 'smart'],
      'prefer-const': 'error'
    }
  }
);
