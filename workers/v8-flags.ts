/**
 * V8 settings the process needs before any code is hot. Imported first by `workers/main.ts`.
 *
 * `--no-turbo-inline-js-wasm-calls`: under sustained load V8 (Node 20.20 and 22.23 alike) aborted the
 * process with `Fatal error … unreachable code` in `Deoptimizer::DoComputeBuiltinContinuation`; a core
 * dump put it on the main thread in `TranslatedValueForWasmReturnKind`, that is, while deoptimising a
 * JavaScript → WebAssembly call (PGlite and Cedar are WebAssembly) that TurboFan had inlined into
 * optimised code. Without that inlining there is no such continuation to compute; calls into WebAssembly
 * go through V8's regular wrapper instead. docs/performance.md has the runs before and after.
 */
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--no-turbo-inline-js-wasm-calls');
