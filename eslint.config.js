import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'docs/api/'] },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  // The dashboard's pages run in a browser: its globals, and none of Node's.
  {
    files: ['web/**/*.ts'],
    languageOptions: { globals: { ...globals.browser } },
    rules: {
      'no-restricted-globals': ['error', { name: 'Buffer', message: 'web/ runs in a browser' }, { name: 'process', message: 'web/ runs in a browser' }],
    },
  },
  // Examples are programs an integrator writes: they print what they did.
  { files: ['examples/**'], rules: { 'no-console': 'off' } },
);
