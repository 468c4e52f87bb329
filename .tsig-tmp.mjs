import { startFakeGraph } from '/work/main/dist/test/fakes/graph-server.js';
import * as P from '/work/main/dist/bench/product.js';
import { Client, Connection } from '@temporalio/client';
import { mkdtempSync } from 'node:fs';
const fake = await startFakeGraph({ tokens: { [P.GRAPH_TOKEN]: {} }, phoneNumbers: { [P.PHONE_NUMBER_ID]: { displayPhoneNumber: P.DISPLAY_PHONE } } });
const dir = mkdtempSync('/tmp/wb/d-');
const p = await P.startProduct({ graphUrl: fake.url, dataDir: dir, logFile: dir + '.log' });
const sys = (await p.api('GET', '/api/system')).data;
const connection = await Connection.connect({ address: sys.temporal.address });
const client = new Client({ connection });
for (const conc of [1, 8, 64]) {
  const N = conc === 1 ? 50 : 400; let next = 0; const lat = [];
  const t = performance.now();
  await Promise.all(Array.from({ length: conc }, async () => {
    while (next < N) { const i = next++; const s = performance.now();
      await client.workflow.signalWithStart('noSuchWorkflow', { workflowId: `x-${conc}-${i % 64}`, taskQueue: 'nobody', args: [], signal: 'sig', signalArgs: [{ i }] });
      lat.push(performance.now() - s); }
  }));
  const sec = (performance.now() - t) / 1000; lat.sort((a, b) => a - b);
  console.log(`conc ${conc}: ${(N / sec).toFixed(0)}/s p50 ${lat[Math.floor(N / 2)].toFixed(1)} p99 ${lat[Math.floor(N * 0.99)].toFixed(1)}`);
}
await connection.close(); await p.stop(); await fake.close(); process.exit(0);
