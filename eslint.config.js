// One linter for the whole tree; type-aware so floating promises and unsafe
// `any` flows are caught, not just style.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'coverage/', 'node_modules/', 'testenv/go/', 'wrapper/'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/consistent-type-imports': 'error',
      // \`import { type X } from 'm'\` still loads m at run time (verbatimModuleSyntax
      // keeps the empty import): a zod or Kubernetes-client import nobody asked for.
      '@typescript-eslint/no-import-type-side-effects': 'error',
      'no-console': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'no-process-exit': 'off',
      // @kubernetes/client-node models are plain-data classes with no
      // behaviour; object literals are how the library is meant to be fed.
      '@typescript-eslint/no-unsafe-class-instance-assignment': 'off',
    },
  },
  {
    // Only the bin entry may end the process; everything else returns or throws.
    files: ['src/**/*.ts'],
    ignores: ['src/bin/**'],
    rules: {
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'exit', message: 'Only src/bin may exit the process.' },
      ],
    },
  },
  {
    // Scripts and tests talk to a person directly.
    files: ['testenv/**/*.ts', 'scripts/**/*.ts', 'bench/**/*.ts', 'test/**/*.ts', 'src/bin/**'],
    rules: { 'no-console': 'off' },
  },
  { files: ['*.js'], ...tseslint.configs.disableTypeChecked },
);
