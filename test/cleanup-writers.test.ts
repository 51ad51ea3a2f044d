// How cleanup retires the objects that write a Secret back (src/cleanup/writers.ts),
// against the real API server and garbage collector, with ESO's real CRDs and
// no controller: the Secret is orphaned, not deleted with its owner; what
// stands in the way is reported instead of waited on for ever; Ctrl-C stops
// the wait. (The whole migration through cleanup, with ESO's controller and
// the Sealed Secrets controller running, is in eso.test.ts and
// sealed-secrets.test.ts.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { retireWriter, type Writer } from '../src/cleanup/writers.js';
import { loadKube } from '../src/kube/config.js';
import { KubeRest, resourcePath } from '../src/kube/rest.js';
import { ESO_GROUP_VERSION } from '../src/sources/eso-cluster.js';
import { ensureEso, installEsoCrds } from '../testenv/eso.js';
import { eventually, kubeClients, sandbox, uniqueName } from './helpers/sandbox.js';

const ns = uniqueName('writers');
const HOLD = 'test.cloudtaser.io/hold';
let rest: KubeRest;
let server = '';

interface Meta {
  metadata?: { uid?: string; finalizers?: string[]; ownerReferences?: unknown[] };
}

const esPath = (name: string): string =>
  resourcePath(ESO_GROUP_VERSION, 'externalsecrets', ns, name);

/** Creates an ExternalSecret by server-side apply (the REST client sends no POST). */
async function externalSecret(name: string, target: string, finalizers: string[] = []) {
  return rest.call<Meta>({
    method: 'PATCH',
    path: esPath(name),
    query: { fieldManager: 'cloudtaser-test' },
    contentType: 'application/apply-patch+yaml',
    body: {
      apiVersion: ESO_GROUP_VERSION,
      kind: 'ExternalSecret',
      metadata: { name, namespace: ns, finalizers },
      spec: {
        secretStoreRef: { name: 'none', kind: 'SecretStore' },
        target: { name: target },
        data: [{ secretKey: 'k', remoteRef: { key: 'k' } }],
      },
    },
  });
}

async function release(name: string): Promise<void> {
  await rest
    .call({
      method: 'PATCH',
      path: esPath(name),
      contentType: 'application/merge-patch+json',
      body: { metadata: { finalizers: null } },
    })
    .catch(() => undefined);
}

const writer = (name: string): Writer => ({ kind: 'ExternalSecret', namespace: ns, name });

beforeAll(async () => {
  const info = sandbox();
  const bins = await ensureEso((line) => {
    process.stderr.write(`${line}\n`);
  });
  await installEsoCrds(info.binaries.kubectl, info.kubeconfig, bins.crds);
  const target = loadKube({ kubeconfig: info.kubeconfig }, {}, process.cwd());
  rest = new KubeRest(target);
  server = target.server;
  await kubeClients().core.createNamespace({ body: { metadata: { name: ns } } });
}, 3_600_000);

afterAll(async () => {
  for (const name of ['held', 'interrupted']) await release(name);
  await kubeClients()
    .core.deleteNamespace({ name: ns })
    .catch(() => undefined);
});

describe('retiring the writers of a Secret', () => {
  it('deletes an ExternalSecret and keeps the Secret it owned, without the owner reference', async () => {
    const es = await externalSecret('owner', 'db');
    await kubeClients().core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: {
          name: 'db',
          ownerReferences: [
            {
              apiVersion: ESO_GROUP_VERSION,
              kind: 'ExternalSecret',
              name: 'owner',
              uid: es.metadata?.uid ?? '',
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        },
        stringData: { k: 'v' },
      },
    });
    const r = await retireWriter(rest, server, writer('owner'), 'db');
    expect(r).toEqual({ outcome: 'deleted' });
    await expect(rest.call({ method: 'GET', path: esPath('owner') })).rejects.toMatchObject({
      code: 404,
    });
    // Orphaned, not collected with its owner.
    const secret = await kubeClients().core.readNamespacedSecret({ name: 'db', namespace: ns });
    expect(secret.metadata?.ownerReferences ?? []).toEqual([]);
    // Gone already: said so, nothing to wait for.
    expect(await retireWriter(rest, server, writer('owner'), 'db')).toEqual({ outcome: 'gone' });
  });

  it('refuses one that now writes another Secret, and leaves it', async () => {
    await externalSecret('moved', 'elsewhere');
    expect(await retireWriter(rest, server, writer('moved'), 'db')).toEqual({
      outcome: 'blocked',
      reason: `ExternalSecret ${ns}/moved now writes Secret elsewhere, not db; re-run discover`,
    });
    const still = await rest.call<Meta>({ method: 'GET', path: esPath('moved') });
    expect(still.metadata?.uid).toBeDefined();
  });

  it('reports a finalizer that does not run instead of waiting for ever', async () => {
    await externalSecret('held', 'db', [HOLD]);
    const started = Date.now();
    const r = await retireWriter(rest, server, writer('held'), 'db', undefined, 2_000);
    expect(r).toMatchObject({ outcome: 'blocked' });
    expect(r.outcome === 'blocked' ? r.reason : '').toContain(
      `ExternalSecret ${ns}/held is still being deleted after 2 s`,
    );
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('stops waiting at Ctrl-C', async () => {
    await externalSecret('interrupted', 'db', [HOLD]);
    const interrupt = new AbortController();
    const waiting = retireWriter(rest, server, writer('interrupted'), 'db', interrupt.signal);
    // Aborted once the delete went through: the object is terminating, held by the finalizer.
    await eventually(
      'the ExternalSecret to be terminating',
      async () => {
        const o = await rest.call<{ metadata?: { deletionTimestamp?: string } }>({
          method: 'GET',
          path: esPath('interrupted'),
        });
        return o.metadata?.deletionTimestamp ? true : undefined;
      },
      10_000,
    );
    interrupt.abort();
    expect(await waiting).toEqual({ outcome: 'interrupted' });
  });
});
