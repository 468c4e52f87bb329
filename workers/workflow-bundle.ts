/**
 * Bundling of the workflow code. Production bundles once at build time (`dist/workflow-bundle.js`) so the
 * process starts fast; tests bundle the TypeScript sources once per run.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';

const here = dirname(fileURLToPath(import.meta.url));
/** The workflows' entry point next to this file's tree (sources or dist). */
export const workflowsEntry = join(
  here,
  '..',
  'workflows',
  existsSync(join(here, '..', 'workflows', 'index.ts')) ? 'index.ts' : 'index.js',
);
/** Where `npm run build` writes the production bundle. */
export const prebuiltBundlePath = join(here, '..', 'workflow-bundle.js');

/** Bundles the workflows (resolving `.js` imports to `.ts` sources when run from sources). */
export async function bundleWorkflows(workflowsPath = workflowsEntry): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({
    workflowsPath,
    logger: {
      log: () => undefined,
      trace: () => undefined,
      debug: () => undefined,
      info: () => undefined,
      warn: console.warn,
      error: console.error,
    },
    webpackConfigHook: (config) => {
      config.resolve = { ...config.resolve, extensionAlias: { '.js': ['.ts', '.js'] } };
      return config;
    },
  });
}

// `node dist/workers/workflow-bundle.js` (run by `npm run build`) writes the production bundle.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { code } = await bundleWorkflows();
  await mkdir(dirname(prebuiltBundlePath), { recursive: true });
  await writeFile(prebuiltBundlePath, code);
  console.log(`workflow bundle written to ${prebuiltBundlePath} (${(code.length / 1024).toFixed(0)} KiB)`);
}
