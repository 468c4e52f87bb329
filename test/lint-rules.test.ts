/**
 * The workflow lint rules bite: a workflow file that breaks each rule is linted with the project's own
 * ESLint config and every break is reported; a file that follows them is clean. A rule that silently stops
 * matching (as `'../activities/*'` did against NodeNext's `.js` specifiers) fails here.
 */
import { ESLint, type Linter } from 'eslint';
import { fileURLToPath } from 'node:url';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
// The project's own eslint.config.js; only type information is switched off, because the sources linted here
// are not files on disk the TypeScript project service could open (the rules under test need no types).
const eslint = new ESLint({ cwd: root, overrideConfig: [tseslint.configs.disableTypeChecked] });

/** The line of `src` (1-based) that contains `marker`. */
function lineOf(src: string, marker: string): number {
  const i = src.split('\n').findIndex((l) => l.includes(marker));
  if (i < 0) throw new Error(`no line with ${marker}`);
  return i + 1;
}

/** Lints `src` as if it were the file `filePath` of the tree. */
async function lint(src: string, filePath: string): Promise<Linter.LintMessage[]> {
  const [result] = await eslint.lintText(src, { filePath: `${root}${filePath}` });
  return result.messages;
}

const BAD_WORKFLOW = `import { proxyActivities } from '@temporalio/workflow';
import { readFileSync } from 'fs'; // bare-builtin
import { createHash } from 'node:crypto'; // node-builtin
import { setTimeout as wait } from 'timers/promises'; // sub-builtin
import { createChatActivities } from '../activities/chat-activities.js'; // activity-value
import { createStore } from '../lib/store/store.js'; // store-value
import { loadConfig } from '../lib/config.js'; // config-value
import { Client } from '@temporalio/client'; // client-value
import { createApp } from '../api/app.js'; // api-value

export async function bad(): Promise<unknown> {
  const acts = proxyActivities<Record<string, () => Promise<void>>>({ startToCloseTimeout: '1 minute' });
  const started = Date.now(); // date-now
  const today = new Date(); // new-date
  const coin = Math.random(); // math-random
  const env = process.env.X; // process-env
  await wait(1);
  return [acts, readFileSync, createHash, createChatActivities, createStore, loadConfig, Client, createApp, started, today, coin, env];
}
`;

const GOOD_WORKFLOW = `import { proxyActivities } from '@temporalio/workflow';
import type { ChatActivities } from '../activities/chat-activities.js';
import type { Store } from '../lib/store/store.js';
import { type Logger } from '../lib/logger.js';
import { FAILURE } from '../lib/errors.js';
import { PROVIDER_INFO } from '../lib/types.js';
import { workflowNow } from './clock.js';

const acts = proxyActivities<ChatActivities>({ startToCloseTimeout: '1 minute' });

export async function good(store?: Store, log?: Logger): Promise<unknown> {
  const at = new Date(workflowNow()).toISOString();
  const later = new Date(workflowNow() + 1000);
  return [acts, store, log, FAILURE.badToken, PROVIDER_INFO, at, later];
}
`;

describe('the environment rule', () => {
  it('lets only lib/config.ts read process.env', async () => {
    const src = `/** Level. */\nexport const level = process.env.LOG_LEVEL;\n`;
    expect((await lint(src, 'lib/logger.ts')).map((m) => m.ruleId)).toEqual(['no-restricted-syntax']);
    expect((await lint(src, 'activities/some-activity.ts')).map((m) => m.ruleId)).toEqual(['no-restricted-syntax']);
    expect(await lint(src, 'lib/config.ts')).toEqual([]);
  });
});

describe('workflow lint rules', () => {
  it('report every value import, built-in, clock read and global a workflow must not use', async () => {
    const messages = await lint(BAD_WORKFLOW, 'workflows/bad.ts');
    const found = messages.map((m) => `${m.line}:${m.ruleId}`).sort();
    const expected = [
      ['bare-builtin', '@typescript-eslint/no-restricted-imports'],
      ['node-builtin', '@typescript-eslint/no-restricted-imports'],
      ['sub-builtin', '@typescript-eslint/no-restricted-imports'],
      ['activity-value', '@typescript-eslint/no-restricted-imports'],
      ['store-value', '@typescript-eslint/no-restricted-imports'],
      ['config-value', '@typescript-eslint/no-restricted-imports'],
      ['client-value', '@typescript-eslint/no-restricted-imports'],
      ['api-value', '@typescript-eslint/no-restricted-imports'],
      ['date-now', 'no-restricted-syntax'],
      ['new-date', 'no-restricted-syntax'],
      ['math-random', 'no-restricted-properties'],
      ['process-env', 'no-restricted-globals'],
    ].map(([marker, rule]) => `${lineOf(BAD_WORKFLOW, `// ${marker}`)}:${rule}`);
    expect(found).toEqual(expected.sort());
    expect(messages.every((m) => m.severity === 2)).toBe(true);
  });

  it('name the rule that was broken in words a newcomer can act on', async () => {
    const messages = await lint(BAD_WORKFLOW, 'workflows/bad.ts');
    const on = (marker: string): string =>
      messages.find((m) => m.line === lineOf(BAD_WORKFLOW, `// ${marker}`))?.message ?? '';
    expect(on('activity-value')).toMatch(/activity types only/);
    expect(on('store-value')).toMatch(/workflow-safe lib modules/);
    expect(on('node-builtin')).toMatch(/Node built-ins/);
    expect(on('new-date')).toMatch(/workflowNow\(\)/);
  });

  it('pass a workflow that imports types, workflow-safe modules and reads the clock through clock.ts', async () => {
    expect(await lint(GOOD_WORKFLOW, 'workflows/good.ts')).toEqual([]);
  });

  it('let clock.ts alone read Date.now()', async () => {
    const src = `/** Now. */\nexport function workflowNow(): number {\n  return Date.now();\n}\n`;
    expect(await lint(src, 'workflows/clock.ts')).toEqual([]);
    expect((await lint(src, 'workflows/other-clock.ts')).map((m) => m.ruleId)).toEqual(['no-restricted-syntax']);
  });

  it('keep the workflow-safe lib modules free of built-ins and of lib modules that are not workflow-safe', async () => {
    const src = `import { randomUUID } from 'node:crypto';\nimport { loadConfig } from './config.js';\nimport { PROVIDER_INFO } from './types.js';\n\n/** x */\nexport const x = [randomUUID, loadConfig, PROVIDER_INFO];\n`;
    const messages = await lint(src, 'lib/pairing.ts');
    expect(messages.map((m) => `${m.line}:${m.ruleId}`)).toEqual([
      '1:@typescript-eslint/no-restricted-imports',
      '2:@typescript-eslint/no-restricted-imports',
    ]);
  });
});
