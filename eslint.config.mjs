// ESLint flat config: typescript-eslint's recommended type-checked rules over lib/, test/, bench/
// (the type information comes from tsconfig.json through the project service), ESLint's
// recommended rules over the plain JS scripts, and eslint-config-prettier last so that no rule
// fights the formatter (layout is prettier's job; `npm run lint` runs prettier --check too).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'build-cmake/', 'node_modules/', 'prebuilds/', 'docs/api/'] },
  // A disable comment that no longer silences anything is an error, so none goes stale.
  { linterOptions: { reportUnusedDisableDirectives: 'error' } },
  js.configs.recommended,
  {
    files: ['**/*.ts'],
    extends: [...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A leading underscore marks a parameter an interface requires but this implementation does not use.
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    files: ['**/*.js'],
    languageOptions: { sourceType: 'commonjs' },
  },
  prettier,
);
