/**
 * Micro-benchmark of the outgoing formatter: how fast formatReply turns a typical ~4 KB agent reply (headings,
 * lists, code, a table, links, emphasis) into WhatsApp parts. Pure CPU; returns numbers and prints nothing.
 */
import { formatReply } from '../lib/format/index.js';

/** Result of {@link benchFormatter}. */
export interface FormatterBenchResult {
  name: string;
  mbPerSec: number;
  docsPerSec: number;
  docBytes: number;
}

const SECTION = `## Deployment status for **service-{n}**

The rollout of \`api-gateway\` finished at 14:02 UTC. A few notes, see [the runbook](https://example.com/runbooks/{n})
and ~~the old dashboard~~ the _new_ dashboard at https://grafana.example.com/d/{n}.

1. Drained **region eu-west-1** and waited for *in-flight* requests
2. Swapped the image tag to \`v2.{n}.0\`
   - verified health checks
   - [x] smoke tests passed
   - [ ] canary at 5% for 30 min
3. Re-enabled traffic

| Region | Status | p99 (ms) |
| --- | :---: | ---: |
| eu-west-1 | **ok** | 182 |
| us-east-1 | degraded | 941 |

\`\`\`ts
export async function rollback(tag: string): Promise<void> {
  await deploy({ tag, strategy: 'blue_green' }); // **not** markdown
}
\`\`\`

> Reminder: 2 * 3 = 6 and snake_case_name stay literal.
> Images: ![latency chart](https://example.com/chart-{n}.png)

---
`;

function mixedDocument(targetBytes: number): string {
  const sections: string[] = ['# Weekly operations report\n'];
  for (let n = 1; sections.join('\n').length < targetBytes; n++) sections.push(SECTION.replaceAll('{n}', String(n)));
  return sections.join('\n');
}

/** Measures formatReply throughput on a ~4 KB mixed Markdown document for about `seconds` (default 1). */
export function benchFormatter(opts: { seconds?: number } = {}): FormatterBenchResult {
  const seconds = opts.seconds ?? 1;
  const doc = mixedDocument(4096);
  const docBytes = new TextEncoder().encode(doc).length;
  // Results feed a checksum so the work cannot be optimised away.
  let sink = 0;
  const warmupEnd = performance.now() + Math.min(200, seconds * 200);
  while (performance.now() < warmupEnd) sink += formatReply(doc, { limit: 4096 }).length;

  let docs = 0;
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let now = start;
  while (now < deadline) {
    sink += formatReply(doc, { limit: 4096 }).length;
    docs++;
    now = performance.now();
  }
  const elapsed = (now - start) / 1000;
  if (sink < 0) throw new Error('unreachable');
  const docsPerSec = docs / elapsed;
  return { name: 'format.reply', mbPerSec: (docsPerSec * docBytes) / 1e6, docsPerSec, docBytes };
}
