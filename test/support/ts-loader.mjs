/**
 * A Node module hook that runs the TypeScript sources without a build, for Wharf nodes the tests start as
 * child processes (test/support/cluster-node.ts): `.js` specifiers resolve to the `.ts` file beside them, and
 * `.ts` files are transpiled one by one with the project's own TypeScript (no type check; `tsc` does that).
 *
 *   node --import ./test/support/ts-loader.mjs test/support/cluster-node.ts
 */
import { register } from 'node:module';

register('./ts-loader-hooks.mjs', import.meta.url);
