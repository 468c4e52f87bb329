/**
 * One Temporal dev server per test run (the real `temporal` CLI, resolved like production resolves it),
 * with Wharf's search attributes registered. Test files connect to it by the address provided here.
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

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    workflowBundlePath: string;
  }
}

let env: TestWorkflowEnvironment | undefined;
let bundleDir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  const cli = resolveTemporalCli();
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
  if (bundleDir) rmSync(bundleDir, { recursive: true, force: true });
}
