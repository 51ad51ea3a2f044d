// The Helm chart (charts/cloudtaser): `helm lint`, its values schema, a
// server-side dry run of what it renders against the real API server, and
// the same objects as `target install` renders from the same settings.
import {
  AdmissionregistrationV1Api,
  CoreV1Api,
  type V1MutatingWebhook,
} from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { installManifests } from '../src/webhook/install.js';
import { ensureHelm, runHelm, type HelmResult } from '../testenv/helm.js';
import { projectRoot } from '../testenv/paths.js';
import { loopbackPki } from '../testenv/pki.js';
import { cli, tempDir } from './helpers/cli.js';
import { kubeConfig, sandbox, uniqueName } from './helpers/sandbox.js';

const CHART = join(projectRoot, 'charts', 'cloudtaser');
let helmBin = '';

function helm(args: string[]): Promise<HelmResult> {
  const info = sandbox();
  return runHelm(helmBin, { kubeconfig: info.kubeconfig, home: info.dir }, args);
}

function kubectl(args: string[], input: string): Promise<{ code: number; out: string }> {
  const info = sandbox();
  return new Promise((resolve) => {
    const child = execFile(
      info.binaries.kubectl,
      ['--kubeconfig', info.kubeconfig, ...args],
      (err, stdout, stderr) => {
        resolve({ code: err ? 1 : 0, out: stdout + stderr });
      },
    );
    child.stdin?.end(input);
  });
}

type Obj = Record<string, unknown> & {
  kind: string;
  metadata: { name: string; namespace?: string };
};

function objects(yamlText: string): Obj[] {
  return parseAllDocuments(yamlText)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

const key = (o: Obj): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

function byKey(list: Obj[]): Record<string, Obj> {
  return Object.fromEntries(list.map((o) => [key(o), o]));
}

beforeAll(async () => {
  helmBin = await ensureHelm((l) => {
    console.error(l);
  });
}, 900_000);

describe('the Helm chart', () => {
  it('passes helm lint, and its schema refuses bad values', async () => {
    const lint = await helm(['lint', '--strict', CHART]);
    expect(lint.code, lint.stdout + lint.stderr).toBe(0);
    expect(lint.stdout).toContain('1 chart(s) linted, 0 chart(s) failed');

    const bad = await helm(['template', 'x', CHART, '--set', 'webhook.failurePolicy=Sometimes']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('failurePolicy');
    const noCa = await helm(['template', 'x', CHART, '--set', 'tls.source=secret']);
    expect(noCa.code).not.toBe(0);
    expect(noCa.stderr).toContain('caBundle');
    const loopback = await helm([
      'template',
      'x',
      CHART,
      '--set',
      'sandbox.loopback=true,sandbox.secondPort=9444,sandbox.apiServerPort=6443,replicaCount=2',
    ]);
    expect(loopback.code).not.toBe(0);
    expect(loopback.stderr).toContain('replicaCount must be 1');
  });

  it('renders objects the API server accepts (server-side dry run), in each TLS mode', async () => {
    const ns = uniqueName('chart');
    await kubeConfig()
      .makeApiClient(CoreV1Api)
      .createNamespace({ body: { metadata: { name: ns } } });
    const dir = await tempDir();
    const pki = await loopbackPki(dir);
    await writeFile(join(dir, 'ca.pem'), pki.ca);
    const variants: string[][] = [
      [],
      [
        '--set',
        'tls.source=secret,registryAuth.enabled=true,webhook.failurePolicy=Ignore',
        '--set-file',
        `tls.caBundle=${join(dir, 'ca.pem')}`,
      ],
      [
        '--set',
        'sandbox.loopback=true,sandbox.secondPort=9444,sandbox.apiServerPort=6443,replicaCount=1',
      ],
    ];
    for (const extra of variants) {
      const t = await helm(['template', 'cloudtaser', CHART, '-n', ns, ...extra]);
      expect(t.code, t.stderr).toBe(0);
      const applied = await kubectl(['apply', '--dry-run=server', '-n', ns, '-f', '-'], t.stdout);
      // The configuration is cluster-wide: while the Helm test (sharing the
      // sandbox) has the chart installed, it exists and the dry run updates it.
      expect(applied.out).toMatch(
        /mutatingwebhookconfiguration\.admissionregistration\.k8s\.io\/cloudtaser (created|configured|unchanged) \(server dry run\)/,
      );
      expect(applied.out).toContain('deployment.apps/cloudtaser-webhook created (server dry run)');
      expect(applied.out).toContain('job.batch/cloudtaser-unregister created (server dry run)');
      expect(applied.code, applied.out).toBe(0);
    }
  });

  it('renders the same objects as target install from the same settings', async () => {
    const dir = await tempDir();
    const pki = await loopbackPki(dir);
    await writeFile(join(dir, 'ca.pem'), pki.ca);
    const ns = 'ct-parity';

    const compare = async (flags: string[], values: string[]): Promise<void> => {
      const r = await cli(['target', 'install', '-n', ns, ...flags], { cwd: dir });
      expect(r.code, r.stderr).toBe(0);
      // Helm installs into a namespace that exists (or --create-namespace);
      // a chart that owned its namespace would delete it on uninstall.
      const fromCli = objects(r.stdout).filter((o) => o.kind !== 'Namespace');
      // Hooks are Helm's own (the pre-delete unregister Job and its RBAC).
      const t = await helm(['template', 'cloudtaser', CHART, '-n', ns, '--no-hooks', ...values]);
      expect(t.code, t.stderr).toBe(0);
      const fromChart = objects(t.stdout);
      expect(Object.keys(byKey(fromChart)).sort()).toEqual(Object.keys(byKey(fromCli)).sort());
      expect(byKey(fromChart)).toEqual(byKey(fromCli));
    };

    // Defaults of target install: cert-manager.
    await compare([], ['--set', 'tls.source=certManager']);
    // Everything changed at once.
    await compare(
      [
        '--image',
        'registry.example/ct/webhook:0.2.0',
        '--init-image',
        'registry.example/ct/init:9',
        '--replicas',
        '3',
        '--failure-policy',
        'Ignore',
        '--tls-secret',
        'own-tls',
        '--ca-bundle',
        'ca.pem',
        '--registry-auth',
        '--auth-mount-path',
        '/auth/k8s-prod/',
      ],
      [
        '--set',
        [
          'image.repository=registry.example/ct/webhook',
          'image.tag=0.2.0',
          'initImage=registry.example/ct/init:9',
          'replicaCount=3',
          'webhook.failurePolicy=Ignore',
          'tls.source=secret',
          'tls.secretName=own-tls',
          'registryAuth.enabled=true',
          'authMountPath=auth/k8s-prod',
        ].join(','),
        '--set-file',
        `tls.caBundle=${join(dir, 'ca.pem')}`,
      ],
    );
    // The chart's default: a generated certificate. target install given
    // the same Secret name and the CA the chart generated renders the rest.
    const gen = await helm(['template', 'cloudtaser', CHART, '-n', ns, '--no-hooks']);
    const secret = objects(gen.stdout).find((o) => o.kind === 'Secret') as
      (Obj & { data: Record<string, string> }) | undefined;
    expect(secret?.metadata.name).toBe('cloudtaser-webhook-tls');
    const ca = Buffer.from(secret?.data['ca.crt'] ?? '', 'base64').toString('utf8');
    expect(ca).toContain('BEGIN CERTIFICATE');
    await writeFile(join(dir, 'generated-ca.pem'), ca);
    const fromChart = objects(gen.stdout).filter((o) => o.kind !== 'Secret');
    const r = await cli(
      [
        'target',
        'install',
        '-n',
        ns,
        '--tls-secret',
        'cloudtaser-webhook-tls',
        '--ca-bundle',
        'generated-ca.pem',
      ],
      { cwd: dir },
    );
    const fromCli = objects(r.stdout).filter((o) => o.kind !== 'Namespace');
    expect(r.code, r.stderr).toBe(0);
    expect(byKey(fromChart)).toEqual(byKey(fromCli));
  });

  it('webhook unregister (the pre-delete hook) removes the configuration, then the guard; a re-run finds them gone', async () => {
    const kc = kubeConfig();
    const admission = kc.makeApiClient(AdmissionregistrationV1Api);
    // Names of this test only: the sandbox is shared with the chart's own install.
    const name = uniqueName('ct-unreg');
    const ns = uniqueName('unreg');
    const objs = installManifests({
      namespace: ns,
      image: 'x/webhook:1',
      initImage: 'x/init:1',
      replicas: 1,
      failurePolicy: 'Ignore',
      certManager: false,
      tlsSecret: 'tls',
      caBundle: 'not a real CA',
      registryAuth: false,
      authMountPath: 'auth/kubernetes',
    });
    const hook = objs.find((o) => o.kind === 'MutatingWebhookConfiguration') as Obj;
    const policy = objs.find((o) => o.kind === 'ValidatingAdmissionPolicy') as Obj;
    const binding = objs.find((o) => o.kind === 'ValidatingAdmissionPolicyBinding') as Obj & {
      spec: Record<string, unknown>;
    };
    // Scoped to namespaces labelled for this test (there are none), so no
    // pod of another test sharing the sandbox meets them.
    const onlyHere = { matchLabels: { 'cloudtaser-test/unregister': name } };
    const h = hook as Obj & { webhooks: V1MutatingWebhook[] };
    const p = policy as Obj & { spec: { matchConstraints: Record<string, unknown> } };
    await admission.createMutatingWebhookConfiguration({
      body: {
        ...h,
        metadata: { name },
        // Plain objects from installManifests, not client models.
        webhooks: h.webhooks.map((w) => Object.assign({}, w, { namespaceSelector: onlyHere })),
      },
    });
    await admission.createValidatingAdmissionPolicy({
      body: {
        ...p,
        metadata: { name },
        spec: {
          ...p.spec,
          matchConstraints: { ...p.spec.matchConstraints, namespaceSelector: onlyHere },
        },
      },
    });
    await admission.createValidatingAdmissionPolicyBinding({
      body: {
        ...binding,
        metadata: { name },
        spec: { ...binding.spec, policyName: name },
      },
    });
    const args = ['webhook', 'unregister', '--name', name, '--guard', name];
    const first = await cli(args);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout.trim().split('\n')).toEqual([
      `mutatingwebhookconfigurations.admissionregistration.k8s.io/${name} deleted`,
      `validatingadmissionpolicybindings.admissionregistration.k8s.io/${name} deleted`,
      `validatingadmissionpolicies.admissionregistration.k8s.io/${name} deleted`,
    ]);
    await expect(admission.readMutatingWebhookConfiguration({ name })).rejects.toMatchObject({
      code: 404,
    });
    const again = await cli(args);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(
      `mutatingwebhookconfigurations.admissionregistration.k8s.io/${name} already gone`,
    );
  });
});
