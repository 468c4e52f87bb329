// ESLint flat config: TypeScript rules, floating promises are errors, and workflow files may not import
// Node built-ins or I/O libraries (workflow code must stay deterministic).
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.tools/**', 'data/**', 'eslint.config.js'] },
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  { files: ['**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*', 'fs', 'path', 'crypto', 'http', 'https', 'net', 'os', 'child_process'], message: 'Workflow code must not use Node built-ins; do I/O in an activity.' },
            { group: ['@temporalio/client', '@temporalio/worker', '@temporalio/activity', 'pg', '@electric-sql/*', 'express', 'pino'], message: 'Workflow code must not import I/O libraries.' },
            { group: ['../activities/*', '!../activities/*.js'], message: 'Import activity types only.' },
          ],
        },
      ],
      'no-restricted-globals': ['error', { name: 'process', message: 'No process.env in workflows.' }],
      'no-restricted-properties': ['error', { object: 'Date', property: 'now', message: 'Read workflow time through workflowNow() from workflows/clock.ts.' }, { object: 'Math', property: 'random', message: 'Use uuid4() from @temporalio/workflow.' }],
    },
  },
);
