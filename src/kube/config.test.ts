import { mkdtemp, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { loadKube } from './config.js';

const kubeconfig = (server: string, token: string, current?: string): string => `apiVersion: v1
kind: Config
clusters:
  - name: shared
    cluster: {server: ${server}}
users:
  - name: shared
    user: {token: ${token}}
contexts:
  - name: shared
    context: {cluster: shared, user: shared}
  - name: only-${token}
    context: {cluster: shared, user: shared}
${current ? `current-context: ${current}\n` : ''}`;

describe('KUBECONFIG with several files', () => {
  it('merges names defined in two files first-wins, as kubectl does', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ct-kc-'));
    const a = join(dir, 'a.yaml');
    const b = join(dir, 'b.yaml');
    // The first file sets no current-context; the second does.
    await writeFile(a, kubeconfig('https://first.example:6443', 'first'));
    await writeFile(b, kubeconfig('https://second.example:6443', 'second', 'shared'));
    const t = loadKube({}, { KUBECONFIG: [a, b].join(delimiter) }, dir, dir);
    expect(t.context).toBe('shared');
    expect(t.server).toBe('https://first.example:6443');
    expect(t.kc.getCurrentUser()?.token).toBe('first');
    // Names only one file defines are all there.
    expect(t.kc.getContexts().map((c) => c.name)).toEqual(['shared', 'only-first', 'only-second']);
    // The other order: the other file's definitions win.
    const u = loadKube({}, { KUBECONFIG: [b, a].join(delimiter) }, dir, dir);
    expect(u.server).toBe('https://second.example:6443');
  });
});
