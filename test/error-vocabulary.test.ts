/**
 * One error vocabulary: docs/api.md's error tables say exactly what lib/errors.ts holds, the failure types
 * are spelt in one place, and the API and the retry policies derive from it.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Root, Table } from 'mdast';
import { fromMarkdown } from 'mdast-util-from-markdown';
import { gfmFromMarkdown } from 'mdast-util-gfm';
import { gfm } from 'micromark-extension-gfm';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { ERROR_STATUS, FAILURE, FAILURES, FINAL_FAILURE_TYPES, REFUSAL, REFUSALS, refusalCode } from '../lib/errors.js';
import { toWharfError } from '../api/errors.js';
import { WHARF_SEARCH_ATTRIBUTES } from '../lib/search-attributes.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** The tables of a Markdown file, each as rows of cell texts (header row first). */
async function tablesOf(file: string): Promise<string[][][]> {
  const tree: Root = fromMarkdown(await readFile(join(root, file), 'utf8'), {
    extensions: [gfm()],
    mdastExtensions: [gfmFromMarkdown()],
  });
  const text = (node: unknown): string => {
    const n = node as { value?: string; children?: unknown[]; type: string };
    if (n.type === 'inlineCode') return `\`${n.value}\``;
    return n.value ?? (n.children ?? []).map(text).join('');
  };
  return tree.children
    .filter((n): n is Table => n.type === 'table')
    .map((t) => t.children.map((row) => row.children.map(text)));
}

/** The backticked words of a cell outside its parenthesised remarks: the codes it names. */
const codesIn = (cell: string): string[] => [...cell.replace(/\([^)]*\)/g, '').matchAll(/`([^`]+)`/g)].map((m) => m[1]);

/** Every TypeScript source file under the given folders. */
async function sources(...dirs: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const dir of dirs) {
    for (const entry of await readdir(join(root, dir), { recursive: true, withFileTypes: true })) {
      if (entry.isFile() && /\.tsx?$/.test(entry.name)) out.push(join(entry.parentPath, entry.name));
    }
  }
  return out;
}

describe('the error vocabulary', () => {
  it("docs/api.md's status table lists exactly the error codes Wharf produces, with their statuses", async () => {
    const table = (await tablesOf('docs/api.md')).find((t) => t[0].join('|') === 'status|codes');
    expect(table).toBeDefined();
    const documented = Object.fromEntries(
      table!.slice(1).flatMap(([status, cell]) => codesIn(cell).map((c) => [c, Number(status)])),
    );
    expect(documented).toEqual({ ...ERROR_STATUS });
  });

  it("docs/api.md's refusal table matches the refusal types and the codes the API answers them with", async () => {
    const table = (await tablesOf('docs/api.md')).find((t) => t[0].join('|') === 'refusal|code');
    expect(table).toBeDefined();
    const documented = Object.fromEntries(table!.slice(1).map(([type, code]) => [codesIn(type)[0], codesIn(code)[0]]));
    expect(documented).toEqual(Object.fromEntries(Object.values(REFUSALS).map((r) => [r.type, r.code])));
  });

  it('an update refused with each type reaches the client as its code; anything else is not_possible_now', () => {
    const refusedWith = (type: string | undefined) =>
      toWharfError(
        new WorkflowUpdateFailedError(
          'refused',
          ApplicationFailure.create({ type, message: 'no', nonRetryable: true }),
        ),
      );
    for (const r of Object.values(REFUSALS))
      expect(refusedWith(r.type)).toMatchObject({ code: r.code, status: ERROR_STATUS[r.code], message: 'no' });
    expect(refusedWith('SomethingElse').code).toBe('not_possible_now');
    expect(refusedWith(undefined).code).toBe('not_possible_now');
    expect(refusalCode(REFUSAL.notFound)).toBe('not_found');
  });

  it('failure types are distinct Wharf names, and the retry policies stop exactly on the final ones', () => {
    const types = Object.values(FAILURE);
    expect(new Set(types).size).toBe(types.length);
    for (const t of types) expect(t).toMatch(/^Wharf[A-Z][A-Za-z]+$/);
    expect(Object.entries(FAILURES).map(([k, f]) => FAILURE[k as keyof typeof FAILURE] === f.type)).not.toContain(
      false,
    );
    expect([...FINAL_FAILURE_TYPES].sort()).toEqual(
      Object.values(FAILURES)
        .filter((f) => f.final)
        .map((f) => f.type)
        .sort(),
    );
    // What the retry policies relied on before the vocabulary was gathered: still final.
    for (const t of [
      FAILURE.badToken,
      FAILURE.unknownPhoneNumber,
      FAILURE.missingPermission,
      FAILURE.sendRejected,
      FAILURE.missingSecret,
      FAILURE.agentFailed,
      FAILURE.unknownSpace,
    ])
      expect(FINAL_FAILURE_TYPES).toContain(t);
    for (const t of [
      FAILURE.rateLimited,
      FAILURE.vaultUnavailable,
      FAILURE.graphUnavailable,
      FAILURE.agentUnavailable,
      FAILURE.sessionUnavailable,
      FAILURE.sendInProgress,
    ])
      expect(FINAL_FAILURE_TYPES).not.toContain(t);
  });

  it('no source code names a Wharf failure type the vocabulary does not hold, and only lib/errors.ts spells them', async () => {
    const known = new Set<string>([
      ...Object.values(FAILURE),
      ...WHARF_SEARCH_ATTRIBUTES.map((k) => k.name),
      'WharfError',
    ]);
    const strays: string[] = [];
    for (const file of await sources('activities', 'api', 'lib', 'workers', 'workflows', 'examples')) {
      const rel = relative(root, file);
      if (rel === 'lib/errors.ts' || rel === 'lib/search-attributes.ts') continue;
      for (const [, name] of (await readFile(file, 'utf8')).matchAll(/['"](Wharf[A-Z][A-Za-z]+)['"]/g)) {
        if (!known.has(name)) strays.push(`${rel}: unknown ${name}`);
        else if (name !== 'WharfError') strays.push(`${rel}: spells ${name} (use FAILURE)`);
      }
    }
    expect(strays).toEqual([]);
  });
});
