// ESLint flat config: TypeScript rules, floating promises are errors, and workflow files may import only what
// is deterministic (test/lint-rules.test.ts lints a bad workflow file to prove each of these rules bites).
import { builtinModules } from 'node:module';
import tseslint from 'typescript-eslint';

/**
 * The lib/ modules workflow code may import values from: pure data and functions, no I/O, no Node built-ins.
 * Adding one means reading it (and what it imports) first; anything else under lib/ is an error in workflows/.
 */
export const WORKFLOW_SAFE_LIB = [
  'types',
  'errors',
  'media',
  'pairing',
  'search-attributes',
  'workflow-metadata',
  'workflow-ids',
];

// Every Node built-in: the bare names here, every `node:` specifier by the `^node:` pattern below (which also
// covers the `node:`-only modules such as node:test that builtinModules leaves out on Node 20).
const NODE_BUILTINS = builtinModules.filter((m) => !m.startsWith('node:'));
const IO_LIBRARIES = [
  '@temporalio/client',
  '@temporalio/worker',
  '@temporalio/activity',
  '@temporalio/testing',
  'pg',
  'pino',
  'express',
  '@whiskeysockets/baileys',
];
const NO_BUILTINS = 'Workflow code must not use Node built-ins; do I/O in an activity.';
const importBans = (extraPatterns) => [
  'error',
  {
    paths: [
      ...NODE_BUILTINS.map((name) => ({ name, message: NO_BUILTINS })),
      ...IO_LIBRARIES.map((name) => ({
        name,
        message: 'Workflow code must not import I/O libraries; do I/O in an activity.',
        allowTypeImports: true,
      })),
    ],
    patterns: [
      { regex: '^node:', message: NO_BUILTINS },
      {
        group: ['@electric-sql/*', '@temporalio/worker/*', '@temporalio/client/*'],
        message: 'Workflow code must not import I/O libraries.',
        allowTypeImports: true,
      },
      ...extraPatterns,
    ],
  },
];
const safeLib = WORKFLOW_SAFE_LIB.join('|');

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
    // The environment is parsed (with zod) in one place; everything else is handed the parsed config.
    files: ['lib/**/*.ts', 'activities/**/*.ts', 'api/**/*.ts', 'workers/**/*.ts'],
    ignores: ['lib/config.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: "MemberExpression[object.name='process'][property.name='env']",
          message: 'Read the environment in lib/config.ts (parsed with zod) and pass the value in.',
        },
      ],
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': 'off',
      '@typescript-eslint/no-restricted-imports': importBans([
        // Activities run I/O; workflows only name their types (proxyActivities<typeof ...>).
        {
          regex: '^(\\.\\./)+activities/',
          message: 'Import activity types only (import type); activities do I/O.',
          allowTypeImports: true,
        },
        {
          regex: `^(\\.\\./)+lib/(?!(${safeLib})\\.js$)`,
          message: `Workflow code may import values only from the workflow-safe lib modules (${WORKFLOW_SAFE_LIB.join(', ')}); see WORKFLOW_SAFE_LIB in eslint.config.js.`,
          allowTypeImports: true,
        },
        {
          regex: '^(\\.\\./)+(api|workers|bench|test|console)/',
          message: 'Workflow code must not import the API, workers, benches, tests or the console.',
          allowTypeImports: true,
        },
      ]),
      'no-restricted-globals': ['error', { name: 'process', message: 'No process.env in workflows.' }],
      'no-restricted-properties': [
        'error',
        { object: 'Math', property: 'random', message: 'Use uuid4() from @temporalio/workflow.' },
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: "NewExpression[callee.name='Date'][arguments.length=0]",
          message: 'Read workflow time through workflowNow() from workflows/clock.ts: new Date(workflowNow()).',
        },
        {
          selector: "CallExpression[callee.object.name='Date'][callee.property.name='now']",
          message: 'Read workflow time through workflowNow() from workflows/clock.ts.',
        },
      ],
    },
  },
  // The one sanctioned clock read: the sandbox's Date is deterministic (see workflows/clock.ts).
  { files: ['workflows/clock.ts'], rules: { 'no-restricted-syntax': 'off' } },
  {
    // The workflow-safe lib modules are bundled into workflows: the same import bans, and only each other.
    files: WORKFLOW_SAFE_LIB.map((m) => `lib/${m}.ts`),
    rules: {
      'no-restricted-imports': 'off',
      '@typescript-eslint/no-restricted-imports': importBans([
        {
          regex: `^\\./(?!(${safeLib})\\.js$)`,
          message: 'A workflow-safe lib module may import only other workflow-safe modules (WORKFLOW_SAFE_LIB).',
          allowTypeImports: true,
        },
        {
          regex: '^\\.\\./',
          message: 'A workflow-safe lib module may import only other workflow-safe modules (WORKFLOW_SAFE_LIB).',
          allowTypeImports: true,
        },
      ]),
      'no-restricted-globals': ['error', { name: 'process', message: 'No process.env in workflow-safe modules.' }],
    },
  },
);
