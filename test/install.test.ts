// `target install` renders manifests the real API server accepts.
import { CoreV1Api } from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { loopbackPki } from '../testenv/pki.js';
import { cli, tempDir } from './helpers/cli.js';
import { kubeConfig, sandbox, uniqueName } from './helpers/sandbox.js';

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

describe('target install', () => {
  it('renders manifests that pass a server-side dry run (bring-your-own certificate)', async () => {
    const ns = uniqueName('inst');
    await kubeConfig()
      .makeApiClient(CoreV1Api)
      .createNamespace({ body: { metadata: { name: ns } } });
    const dir = await tempDir();
    const pki = await loopbackPki(dir);
    await writeFile(join(dir, 'ca.pem'), pki.ca);
    const r = await cli(
      [
        'target',
        'install',
        '--dry-run',
        '-o',
        'yaml',
        '-n',
        ns,
        '--tls-secret',
        'webhook-tls',
        '--ca-bundle',
        'ca.pem',
        '--registry-auth',
      ],
      { cwd: dir },
    );
    expect(r.code).toBe(0);
    const kinds = parseAllDocuments(r.stdout).map((d) => (d.toJS() as { kind: string }).kind);
    expect(kinds).toEqual([
      'Namespace',
      'ServiceAccount',
      'ClusterRole',
      'ClusterRoleBinding',
      'Deployment',
      'PodDisruptionBudget',
      'Service',
      'MutatingWebhookConfiguration',
    ]);
    const applied = await kubectl(['apply', '--dry-run=server', '-f', '-'], r.stdout);
    // The configuration is cluster-wide: while the Helm test (sharing the
    // sandbox) has the chart installed, it exists and the dry run updates it.
    expect(applied.out).toMatch(
      /mutatingwebhookconfiguration\.admissionregistration\.k8s\.io\/cloudtaser (created|configured|unchanged) \(server dry run\)/,
    );
    expect(applied.out).toContain(`deployment.apps/cloudtaser-webhook created (server dry run)`);
    expect(applied.code).toBe(0);
    const hook = parseAllDocuments(r.stdout)
      .map(
        (d) =>
          d.toJS() as {
            kind: string;
            webhooks?: { namespaceSelector: unknown; failurePolicy: string }[];
          },
      )
      .find((d) => d.kind === 'MutatingWebhookConfiguration');
    expect(hook?.webhooks?.[0]?.namespaceSelector).toEqual({
      matchExpressions: [
        {
          key: 'kubernetes.io/metadata.name',
          operator: 'NotIn',
          values: ['kube-system', 'kube-public', 'kube-node-lease', ns],
        },
      ],
    });
    expect(r.stdout).toContain('failurePolicy: Fail');
  });

  it('uses cert-manager by default and refuses a TLS secret without its CA', async () => {
    const r = await cli(['target', 'install']);
    expect(r.stdout).toContain('kind: Certificate');
    expect(r.stdout).toContain(
      'cert-manager.io/inject-ca-from: cloudtaser-system/cloudtaser-webhook',
    );
    const bad = await cli(['target', 'install', '--tls-secret', 'x']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--tls-secret needs --ca-bundle');
  });
});
