// The ground every other test stands on: the sandbox's servers are real and
// wired together as the product expects.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { bao, eventually, kubeClients, sandbox, uniqueName } from './helpers/sandbox.js';

const run = promisify(execFile);

describe('sandbox', () => {
  it('runs Deployments through the real controller-manager (ReplicaSet and Pod appear)', async () => {
    const { core, apps } = kubeClients();
    const ns = uniqueName('found');
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name: 'web' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'web' } },
          template: {
            metadata: { labels: { app: 'web' } },
            spec: { containers: [{ name: 'web', image: 'nginx:1.27' }] },
          },
        },
      },
    });
    const rs = await eventually('a ReplicaSet', async () => {
      const list = await apps.listNamespacedReplicaSet({ namespace: ns });
      return list.items.find((r) => r.metadata?.ownerReferences?.[0]?.name === 'web');
    });
    const pod = await eventually('a Pod', async () => {
      const list = await core.listNamespacedPod({ namespace: ns });
      return list.items.find((p) => p.metadata?.ownerReferences?.[0]?.name === rs.metadata?.name);
    });
    expect(pod.spec?.containers[0]?.image).toBe('nginx:1.27');
    // No scheduler or kubelet: the pod exists but never runs.
    expect(pod.status?.phase).toBe('Pending');
  });

  it('stores a KV v2 secret in OpenBao and reads back only its field names', async () => {
    const path = `${uniqueName('found')}/db`;
    const put = await bao('POST', `secret/data/${path}`, {
      data: { username: 'u', password: 'p' },
    });
    expect(put.status).toBe(200);
    const sub = await bao('GET', `secret/subkeys/${path}?depth=1`);
    expect(sub.status).toBe(200);
    const subkeys = (sub.json as { data: { subkeys: Record<string, null> } }).data.subkeys;
    expect(Object.keys(subkeys).sort()).toEqual(['password', 'username']);
    expect(Object.values(subkeys)).toEqual([null, null]);
  });

  it('logs in to OpenBao with a TokenRequest token through Kubernetes auth', async () => {
    const { core } = kubeClients();
    const ns = uniqueName('found');
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await core.createNamespacedServiceAccount({
      namespace: ns,
      body: { metadata: { name: 'app' } },
    });
    const policy = `${ns}-read`;
    expect(
      (
        await bao('POST', `sys/policies/acl/${policy}`, {
          policy: `path "secret/data/${ns}/*" { capabilities = ["read"] }`,
        })
      ).status,
    ).toBe(204);
    expect(
      (
        await bao('POST', `auth/${sandbox().baoKubeAuthPath}/role/${ns}-role`, {
          bound_service_account_names: ['app'],
          bound_service_account_namespaces: [ns],
          token_policies: [policy],
          token_ttl: '5m',
        })
      ).status,
    ).toBe(204);
    const tr = await core.createNamespacedServiceAccountToken({
      name: 'app',
      namespace: ns,
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const jwt = tr.status?.token;
    expect(jwt).toBeTruthy();
    const login = await bao('POST', `auth/${sandbox().baoKubeAuthPath}/login`, {
      role: `${ns}-role`,
      jwt,
    });
    expect(login.status).toBe(200);
    const auth = (login.json as { auth: { client_token: string; policies: string[] } }).auth;
    expect(auth.policies.sort()).toEqual(['default', policy].sort());
    expect(auth.client_token).toMatch(/\S+/);

    // A token from another service account is refused by the same role.
    await core.createNamespacedServiceAccount({
      namespace: ns,
      body: { metadata: { name: 'intruder' } },
    });
    const other = await core.createNamespacedServiceAccountToken({
      name: 'intruder',
      namespace: ns,
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const refused = await bao('POST', `auth/${sandbox().baoKubeAuthPath}/login`, {
      role: `${ns}-role`,
      jwt: other.status?.token,
    });
    expect(refused.status).toBe(403);
  });

  it('runs the built kubectl against the sandbox', async () => {
    const info = sandbox();
    const { stdout } = await run(
      info.binaries.kubectl,
      ['--kubeconfig', info.kubeconfig, 'get', 'namespace', 'kube-system', '-o', 'name'],
      { timeout: 30_000 },
    );
    expect(stdout.trim()).toBe('namespace/kube-system');
    const version = await run(info.binaries.kubectl, [
      '--kubeconfig',
      info.kubeconfig,
      'version',
      '-o',
      'json',
    ]);
    const v = JSON.parse(version.stdout) as { serverVersion: { gitVersion: string } };
    expect(v.serverVersion.gitVersion).toBe('v1.34.4');
  });
});
