// Two clusters, one OpenBao: the sandbox's control plane (A) and a second,
// bare one (B: its own etcd, API server, CA and signing key) started here.
// Each cluster is registered in vault from its fingerprint file alone, on a
// mount of its own, with the same tenant name in both; a pod-bound token
// logs in only through its own cluster's mount; a plan refuses the other
// cluster.
import { AppsV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startControlPlane, type ControlPlane } from '../testenv/control-plane.js';
import { cli, sandboxEnv, tempDir } from './helpers/cli.js';
import { bao, eventually, sandbox, uniqueName } from './helpers/sandbox.js';

const VAULT = 'https://vault.eu.example.com';

function clientsFor(kubeconfig: string): { core: CoreV1Api; apps: AppsV1Api } {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfig);
  return { core: kc.makeApiClient(CoreV1Api), apps: kc.makeApiClient(AppsV1Api) };
}

/** Namespace, service account `app`, Secret `db` and a Deployment reading it. */
async function workload(kubeconfig: string, ns: string): Promise<void> {
  const { core, apps } = clientsFor(kubeconfig);
  await core.createNamespace({ body: { metadata: { name: ns } } });
  await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'app' } } });
  await core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: 'db' }, stringData: { password: 'not-read-by-this-test' } },
  });
  await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: 'api' },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: 'api' } },
        template: {
          metadata: { labels: { app: 'api' } },
          spec: {
            serviceAccountName: 'app',
            containers: [
              {
                name: 'app',
                image: 'app:1',
                env: [
                  {
                    name: 'DB_PASS',
                    valueFrom: { secretKeyRef: { name: 'db', key: 'password' } },
                  },
                ],
              },
            ],
          },
        },
      },
    },
  });
}

/**
 * A pod object (it stays Pending: no node runs it) and a token bound to it,
 * for vault's audience: what the kubelet would project into the pod.
 */
async function podBoundToken(
  kubeconfig: string,
  ns: string,
): Promise<{ token: string; deletePod: () => Promise<void> }> {
  const { core } = clientsFor(kubeconfig);
  const pod = await core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: 'login' },
      spec: { serviceAccountName: 'app', containers: [{ name: 'app', image: 'app:1' }] },
    },
  });
  const tr = await core.createNamespacedServiceAccountToken({
    namespace: ns,
    name: 'app',
    body: {
      spec: {
        audiences: ['cloudtaser'],
        expirationSeconds: 600,
        boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: 'login', uid: pod.metadata?.uid },
      },
    },
  });
  const token = tr.status?.token;
  if (!token) throw new Error('no token');
  return {
    token,
    deletePod: async () => {
      await core.deleteNamespacedPod({ namespace: ns, name: 'login', gracePeriodSeconds: 0 });
    },
  };
}

async function login(
  mount: string,
  role: string,
  jwt: string,
): Promise<{ status: number; token?: string; policies?: string[]; errors: string }> {
  const r = await bao('POST', `auth/${mount}/login`, { role, jwt });
  const body = r.json as
    { auth?: { client_token?: string; policies?: string[] }; errors?: string[] } | undefined;
  const auth = body?.auth;
  return {
    status: r.status,
    errors: (body?.errors ?? []).join('; '),
    ...(auth?.client_token ? { token: auth.client_token } : {}),
    ...(auth?.policies ? { policies: auth.policies } : {}),
  };
}

describe('two clusters, one OpenBao', () => {
  let b: ControlPlane | undefined;
  beforeAll(async () => {
    b = await startControlPlane({ name: 'cluster-b' });
  }, 180_000);
  afterAll(async () => {
    await b?.stop();
  });

  it('registers each cluster from its fingerprint file on its own mount; tokens log in only through their own', async () => {
    if (!b) throw new Error('cluster B did not start');
    const envA = sandboxEnv();
    const envB = sandboxEnv({ KUBECONFIG: b.kubeconfig });
    const ns = uniqueName('shop'); // the same namespace, so the same tenant name, in both
    const tag = ns.slice(-6);
    const mountA = `kubernetes-a-${tag}`;
    const mountB = `kubernetes-b-${tag}`;
    const kvA = `kv-a-${tag}`;
    const kvB = `kv-b-${tag}`;
    await workload(sandbox().kubeconfig, ns);
    await workload(b.kubeconfig, ns);
    const cwd = await tempDir('ct-multi-');
    const run = (argv: string[], env: NodeJS.ProcessEnv) => cli(argv, { cwd, env });

    // Cluster side: the plan and the fingerprint file of each cluster.
    const discA = await run(
      ['target', 'discover', '-o', 'a.yaml', '-n', ns, '--kv-mount', kvA],
      envA,
    );
    expect(discA.stderr).not.toContain('Warning: the plan records no cluster fingerprint');
    expect(discA.code).toBe(0);
    expect(
      (await run(['target', 'discover', '-o', 'b.yaml', '-n', ns, '--kv-mount', kvB], envB)).code,
    ).toBe(0);
    const fpA = await run(['target', 'fingerprint', '--reviewer-token', '-o', 'fa.yaml'], envA);
    const fpB = await run(['target', 'fingerprint', '--reviewer-token', '-o', 'fb.yaml'], envB);
    expect(fpA.code).toBe(0);
    expect(fpB.code).toBe(0);
    const fileA = parse(await readFile(join(cwd, 'fa.yaml'), 'utf8')) as {
      fingerprint: string;
      apiServer: string;
      issuer: string;
      reviewer: { token: string };
    };
    const fileB = parse(await readFile(join(cwd, 'fb.yaml'), 'utf8')) as typeof fileA;
    expect(fileA.apiServer).toBe(sandbox().apiServer);
    expect(fileB.apiServer).toBe(b.apiServer);
    expect(fileA.issuer).toBe(sandbox().apiServer);
    expect(fileA.fingerprint).not.toBe(fileB.fingerprint);
    // The token is secret: a private file, never printed.
    expect((await stat(join(cwd, 'fa.yaml'))).mode & 0o777).toBe(0o600);
    for (const r of [fpA, fpB]) {
      for (const t of [fileA.reviewer.token, fileB.reviewer.token]) {
        expect(r.stdout + r.stderr).not.toContain(t);
      }
    }
    expect(fpA.stdout).toContain(`cluster ${fileA.fingerprint}`);
    // Without -o the file is printed, without a token; with --reviewer-token that is refused.
    const printed = await run(['target', 'fingerprint'], envA);
    expect(printed.code).toBe(0);
    expect((parse(printed.stdout) as { fingerprint: string; reviewer?: unknown }).fingerprint).toBe(
      fileA.fingerprint,
    );
    expect(printed.stdout).not.toContain('reviewer');
    expect((await run(['target', 'fingerprint', '--reviewer-token'], envA)).code).toBe(2);

    // Each plan records its own cluster.
    const planA = parse(await readFile(join(cwd, 'a.yaml'), 'utf8')) as {
      metadata: { clusterFingerprint?: string };
      tenants: { name: string }[];
    };
    const planB = parse(await readFile(join(cwd, 'b.yaml'), 'utf8')) as typeof planA;
    expect(planA.metadata.clusterFingerprint).toBe(fileA.fingerprint);
    expect(planB.metadata.clusterFingerprint).toBe(fileB.fingerprint);
    expect(planA.tenants.map((t) => t.name)).toEqual([ns]);
    expect(planB.tenants.map((t) => t.name)).toEqual([ns]);

    // Vault side: register each cluster from its file alone, then its plan on its mount.
    const regA = await run(
      ['source', 'register', '--fingerprint', 'fa.yaml', '--auth-path', mountA],
      envA,
    );
    expect(regA.stderr).toBe('');
    expect(regA.code).toBe(0);
    expect(regA.stdout + regA.stderr).not.toContain(fileA.reviewer.token);
    expect(
      (await run(['source', 'register', '--fingerprint', 'fb.yaml', '--auth-path', mountB], envA))
        .code,
    ).toBe(0);
    // A mount registered for one cluster is not taken over by another's file.
    const wrongMount = await run(
      ['source', 'register', '--fingerprint', 'fb.yaml', '--auth-path', mountA],
      envA,
    );
    expect(wrongMount.code).toBe(2);
    expect(wrongMount.stderr).toContain(`registered for cluster ${fileA.fingerprint}`);
    // A file edited after it was written is refused.
    const edited = (await readFile(join(cwd, 'fb.yaml'), 'utf8')).replace(
      /kubeSystemUid: .*/,
      'kubeSystemUid: 00000000-0000-0000-0000-000000000000',
    );
    await writeFile(join(cwd, 'fe.yaml'), edited);
    const editedRun = await run(
      ['source', 'register', '--fingerprint', 'fe.yaml', '--auth-path', `kubernetes-e-${tag}`],
      envA,
    );
    expect(editedRun.code).toBe(2);
    expect(editedRun.stderr).toContain('edited after it was written');
    expect(editedRun.stderr).not.toContain(fileB.reviewer.token);

    const authList = (await bao('GET', 'sys/auth')).json as Record<
      string,
      { type?: string; description?: string }
    >;
    expect(authList[`${mountA}/`]?.description).toBe(`cloudtaser cluster ${fileA.fingerprint}`);
    expect(
      (
        await run(
          ['source', 'apply-plan', 'a.yaml', '--auth-path', mountA, '--kv-mount', kvA],
          envA,
        )
      ).code,
    ).toBe(0);
    const applyB = await run(
      ['source', 'apply-plan', 'b.yaml', '--auth-path', mountB, '--kv-mount', kvB],
      envA,
    );
    expect(applyB.code).toBe(0);
    // Registered: apply-plan no longer asks for the auth method's configuration.
    expect(applyB.stderr).not.toContain('has no configuration');
    await bao('POST', `${kvA}/data/${ns}/db`, { data: { password: 'from-a' } });
    await bao('POST', `${kvB}/data/${ns}/db`, { data: { password: 'from-b' } });

    const role = `${ns}-role`;
    const podA = await podBoundToken(sandbox().kubeconfig, ns);
    const podB = await podBoundToken(b.kubeconfig, ns);

    // A's pod through A's mount: in, with A's policy only, reading A's path and not B's.
    const aOnA = await login(mountA, role, podA.token);
    expect(aOnA.status).toBe(200);
    expect(aOnA.policies).toContain(`${ns}-read@${mountA}`);
    expect(aOnA.policies).not.toContain(`${ns}-read@${mountB}`);
    expect((await bao('GET', `${kvA}/data/${ns}/db`, undefined, aOnA.token)).status).toBe(200);
    expect((await bao('GET', `${kvB}/data/${ns}/db`, undefined, aOnA.token)).status).toBe(403);
    // ...refused through B's: B's API server does not know A's token.
    const aOnB = await login(mountB, role, podA.token);
    expect(aOnB.status).toBe(403);
    expect(aOnB.token).toBeUndefined();
    // And the other way round.
    const bOnB = await login(mountB, role, podB.token);
    expect(bOnB.status).toBe(200);
    expect((await bao('GET', `${kvB}/data/${ns}/db`, undefined, bOnB.token)).status).toBe(200);
    expect((await bao('GET', `${kvA}/data/${ns}/db`, undefined, bOnB.token)).status).toBe(403);
    expect((await login(mountA, role, podB.token)).status).toBe(403);
    // Fully disconnected: cluster B also on a JWT mount, which checks tokens
    // against the public signing keys in B's file, never calling B.
    const jwtB = `jwt-b-${tag}`;
    const regJwt = await run(
      ['source', 'register', '--fingerprint', 'fb.yaml', '--auth-path', jwtB, '--method', 'jwt'],
      envA,
    );
    expect(regJwt.code).toBe(0);
    const auths = (await bao('GET', 'sys/auth')).json as Record<string, { type?: string }>;
    expect(auths[`${jwtB}/`]?.type).toBe('jwt');
    const applyJwt = ['source', 'apply-plan', 'b.yaml', '--auth-path', jwtB, '--kv-mount', kvB];
    expect((await run(applyJwt, envA)).code).toBe(0);
    // The roles read back from OpenBao compare equal: a second run writes nothing.
    expect((await run(applyJwt, envA)).stdout).toContain('Everything is up to date');
    const bOnJwt = await login(jwtB, role, podB.token);
    expect(bOnJwt.status).toBe(200);
    expect(bOnJwt.policies).toContain(`${ns}-read@${jwtB}`);
    expect((await bao('GET', `${kvB}/data/${ns}/db`, undefined, bOnJwt.token)).status).toBe(200);
    // A's token (other keys) and B's own API-audience token are refused.
    const aOnJwt = await login(jwtB, role, podA.token);
    expect(aOnJwt.token).toBeUndefined();
    expect(aOnJwt.status).toBeGreaterThanOrEqual(400);
    // The wording the wrapper's hint for a JWT mount keys on (wrapper/login.go).
    expect(aOnJwt.errors).toContain('signature');
    const apiTokenB = await clientsFor(b.kubeconfig).core.createNamespacedServiceAccountToken({
      namespace: ns,
      name: 'app',
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const apiOnJwt = await login(jwtB, role, apiTokenB.status?.token ?? '');
    expect(apiOnJwt.token).toBeUndefined();
    expect(apiOnJwt.status).toBeGreaterThanOrEqual(400);

    // Review is live: once its pod is gone, the pod-bound token no longer logs in.
    // (The API server checks the pod through its informer cache: poll.)
    await podA.deletePod();
    await eventually('the deleted pod to invalidate its token', async () =>
      (await login(mountA, role, podA.token)).status === 403 ? true : undefined,
    );

    // A's plan against cluster B: refused, both fingerprints named.
    const protectArgs = [
      'target',
      'protect',
      '--plan',
      'a.yaml',
      '--vault-address',
      VAULT,
      '--yes',
    ];
    const wrong = await run(protectArgs, envB);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain(fileA.fingerprint);
    expect(wrong.stderr).toContain(fileB.fingerprint);
    expect(wrong.stdout).toBe('');
    for (const argv of [
      ['target', 'status', '--plan', 'a.yaml'],
      ['target', 'validate', '--plan', 'a.yaml', '--auth-path', mountA],
      ['target', 'audit', '--plan', 'a.yaml', '--auth-path', mountA],
    ]) {
      const r = await run(argv, envB);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr).toContain(fileA.fingerprint);
      expect(r.stderr).toContain(fileB.fingerprint);
    }
    // Nothing on B was touched by the refused run.
    const depB = await clientsFor(b.kubeconfig).apps.readNamespacedDeployment({
      namespace: ns,
      name: 'api',
    });
    expect(depB.spec?.template.metadata?.annotations?.['cloudtaser.io/inject']).toBeUndefined();
    // --cluster-mismatch-ok lets it through, with a warning.
    const forced = await run([...protectArgs, '--dry-run', '--cluster-mismatch-ok'], envB);
    expect(forced.stderr).toContain('--cluster-mismatch-ok');
    expect(forced.code).toBe(0);

    // On its own cluster the plan goes through, and the templates carry A's mount.
    const ok = await run([...protectArgs, '--auth-path', mountA], envA);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    const depA = await clientsFor(sandbox().kubeconfig).apps.readNamespacedDeployment({
      namespace: ns,
      name: 'api',
    });
    expect(depA.spec?.template.metadata?.annotations?.['cloudtaser.io/vault-auth-path']).toBe(
      mountA,
    );
    const statusA = await run(['target', 'status', '--plan', 'a.yaml'], envA);
    expect(statusA.code).toBe(0);

    // B protected through its JWT mount: validate reads the JWT roles' bindings.
    expect(
      (
        await run(
          [
            'target',
            'protect',
            '--plan',
            'b.yaml',
            '--vault-address',
            VAULT,
            '--yes',
            '--auth-path',
            jwtB,
          ],
          envB,
        )
      ).code,
    ).toBe(0);
    const validB = await run(
      ['target', 'validate', '--plan', 'b.yaml', '--auth-path', jwtB, '-n', ns],
      envB,
    );
    expect(validB.stdout).toContain('Validating 1 protected workload(s)');
    expect(validB.stdout + validB.stderr).not.toContain('✗');
    expect(validB.code).toBe(0);
  });
});
