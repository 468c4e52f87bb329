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
      'no-restricted-properties': ['error', { object: 'Date', property: 'now', message: 'Use workflow time only via Date (deterministic in the sandbox), not Date.now() in shared code paths.' }, { object: 'Math', property: 'random', message: 'Use the workflow uuid4/random from @temporalio/workflow.' }],
    },
  },
);
