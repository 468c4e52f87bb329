/**
 * One Temporal dev server per test run (the real `temporal` CLI, resolved like production resolves it),
 * with Wharf's search attributes registered, and one throwaway PostgreSQL cluster. Test files connect to
 * them by the addresses provided here.
 */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { bundleWorkflows } from '../workers/workflow-bundle.js';
import { resolveTemporalCli } from '../lib/temporal-cli.js';
import { WHARF_SEARCH_ATTRIBUTES } from '../lib/search-attributes.js';
import { DEV_SERVER_TUNING } from '../workers/temporal-server.js';
import { startTestPostgres, type TestPostgres } from './support/postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    workflowBundlePath: string;
    /** The run's PostgreSQL cluster (superuser URL of its `postgres` database); test files create their own databases. */
    postgresAdminUrl: string;
    /** The store the project's Wharf instances run on (vitest.config.ts: every file on SQLite, some on the others). */
    storeKind: 'pglite' | 'postgres' | 'sqlite';
  }
}

let env: TestWorkflowEnvironment | undefined;
let bundleDir: string | undefined;
let postgres: TestPostgres | undefined;

export async function setup(project: TestProject): Promise<void> {
  const cli = resolveTemporalCli();
  postgres = await startTestPostgres();
  project.provide('postgresAdminUrl', postgres.adminUrl);
  env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: cli.path ? { type: 'existing-path', path: cli.path } : { type: 'cached-download' },
      searchAttributes: WHARF_SEARCH_ATTRIBUTES,
      // The product's own tuning, so tests run the server the way Wharf runs it.
      extraArgs: ['--log-level', 'error', ...DEV_SERVER_TUNING],
    },
  });
  project.provide('temporalAddress', env.address);
  // Bundle the workflow sources once per run; every test worker loads the same bundle.
  bundleDir = mkdtempSync(join(tmpdir(), 'wharf-bundle-'));
  const bundlePath = join(bundleDir, 'workflows.js');
  writeFileSync(bundlePath, (await bundleWorkflows()).code);
  project.provide('workflowBundlePath', bundlePath);
}

export async function teardown(): Promise<void> {
  await env?.teardown();
  await postgres?.stop();
  if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
}
