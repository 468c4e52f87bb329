/** Registers Wharf's search attributes on a Temporal cluster (the embedded server registers them itself). */
import type { Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import type { Logger } from '../lib/logger.js';
import { WHARF_SEARCH_ATTRIBUTES } from '../lib/search-attributes.js';

/** Adds the missing search attributes; existing ones are left as they are. */
export async function registerSearchAttributes(connection: Connection, namespace: string, log: Logger): Promise<void> {
  const existing = await connection.operatorService.listSearchAttributes({ namespace });
  const have = new Set(Object.keys(existing.customAttributes ?? {}));
  const missing = WHARF_SEARCH_ATTRIBUTES.filter((k) => !have.has(k.name));
  if (!missing.length) return;
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(
      missing.map((k) => [k.name, proto.temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD]),
    ),
  });
  log.info({ added: missing.map((k) => k.name) }, 'search attributes registered');
  // A cluster takes a few seconds to serve new attributes everywhere; wait until a query accepts them so
  // the first workflows started do not fail.
  const query = missing.map((k) => `${k.name} = 'probe'`).join(' AND ');
  for (let i = 0; i < 60; i++) {
    try {
      await connection.workflowService.countWorkflowExecutions({ namespace, query });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  log.warn('search attributes registered but not yet queryable; continuing');
}
