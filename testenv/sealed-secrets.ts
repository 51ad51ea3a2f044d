// Bitnami Sealed Secrets for the sandbox: kubeseal and the controller built
// from the pinned Go module (cached like the control plane), an image holding
// the static controller pushed to the sandbox's registry, and the controller
// deployed as a pod on the sandbox node the way a cluster runs it (CRD, RBAC,
// its own key Secret).
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensureGoTools, type Log } from './build.js';
import { freePort } from './net.js';
import { registryClient, tarLayer, type Image } from './images.js';
import type { SandboxInfo, SandboxNode } from './sandbox.js';

const exec = promisify(execFile);

export const SEALED_SECRETS_VERSION = 'v0.40.0';
/**
 * The module is published as github.com/bitnami-labs/sealed-secrets but its
 * go.mod names github.com/bitnami/sealed-secrets, so it cannot be required
 * from a wrapper module: it is downloaded as is and built in place.
 */
const MODULE = 'github.com/bitnami-labs/sealed-secrets';

export interface SealedSecretsBinaries {
  kubeseal: string;
  controller: string;
  /** The CRD manifest shipped in the module (helm chart's crds/). */
  crd: string;
}

async function moduleDir(): Promise<string> {
  const { stdout } = await exec(
    'go',
    ['mod', 'download', '-json', `${MODULE}@${SEALED_SECRETS_VERSION}`],
    { cwd: '/', maxBuffer: 1 << 20 },
  );
  const info = JSON.parse(stdout) as { Dir?: string; Error?: string };
  if (!info.Dir) throw new Error(`testenv: cannot download ${MODULE}: ${info.Error ?? stdout}`);
  return info.Dir;
}

/** Builds (first run only) and returns kubeseal, the controller and the CRD. */
export async function ensureSealedSecrets(log: Log): Promise<SealedSecretsBinaries> {
  const dir = await moduleDir();
  const b = await ensureGoTools(log, {
    id: 'sealed-secrets',
    label: 'kubeseal/sealed-secrets controller',
    moduleDir: dir,
    version: SEALED_SECRETS_VERSION,
    tools: [
      { pkg: './cmd/kubeseal', out: 'kubeseal', name: 'kubeseal' },
      { pkg: './cmd/controller', out: 'controller', name: 'controller' },
    ],
    ldflags: `-s -w -X main.VERSION=${SEALED_SECRETS_VERSION}`,
    estimate: 'about 5 min on 2 cores',
  });
  return {
    kubeseal: b.kubeseal ?? '',
    controller: b.controller ?? '',
    crd: `${dir}/helm/sealed-secrets/crds/bitnami.com_sealedsecrets.yaml`,
  };
}

// --- the controller as a pod on the sandbox node

export const CONTROLLER_NAME = 'sealed-secrets-controller';
/** The label the controller puts on its key Secrets (`…=active`). */
export const KEY_LABEL = 'sealedsecrets.bitnami.com/sealed-secrets-key';
const IMAGE_REPO = 'cloudtaser/sealed-secrets-controller';

/**
 * The controller image as upstream's docker/controller.Dockerfile lays it
 * out (the static binary in /usr/local/bin, USER 1001, ENTRYPOINT
 * [controller]), without the distroless base: a static Go binary needs none.
 */
export async function pushControllerImage(
  registry: string,
  controller: string,
  work: string,
): Promise<string> {
  const root = join(work, 'sealed-secrets-controller-root');
  await mkdir(join(root, 'usr', 'local', 'bin'), { recursive: true });
  await mkdir(join(root, 'tmp'), { recursive: true, mode: 0o1777 });
  await writeFile(join(root, 'usr', 'local', 'bin', 'controller'), await readFile(controller), {
    mode: 0o755,
  });
  const image: Image = {
    architecture: 'amd64',
    config: {
      User: '1001',
      Env: ['PATH=/usr/local/bin'],
      Entrypoint: ['controller'],
    },
    layers: [await tarLayer(root)],
  };
  await registryClient(registry).pushImage(IMAGE_REPO, SEALED_SECRETS_VERSION, image);
  return `${registry}/${IMAGE_REPO}:${SEALED_SECRETS_VERSION}`;
}

export interface SealedSecretsController {
  namespace: string;
  name: string;
  kubeseal: string;
  image: string;
  /** The controller's public certificate (PEM), for `kubeseal --cert`. */
  certPem: string;
  /** Removes the controller, its RBAC, key Secrets and the CRD (and with it every SealedSecret). */
  stop(): Promise<void>;
}

async function kubectl(
  info: SandboxInfo,
  args: readonly string[],
  stdin?: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      info.binaries.kubectl,
      [...args],
      {
        // Its discovery cache goes to the sandbox dir, not to $HOME or the cwd.
        env: {
          PATH: process.env.PATH,
          KUBECONFIG: info.kubeconfig,
          KUBECACHEDIR: join(info.dir, 'kube-cache'),
        },
        maxBuffer: 16 << 20,
      },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`));
        else resolve(stdout);
      },
    );
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

/** The objects the upstream chart installs for the controller, for one namespace. */
function controllerObjects(o: {
  namespace: string;
  image: string;
  apiPort: string;
  listenPort: number;
  metricsPort: number;
  toleration: SandboxNode['toleration'];
}): unknown[] {
  const name = CONTROLLER_NAME;
  const labels = { 'app.kubernetes.io/name': name };
  return [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: o.namespace } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name },
      rules: [
        {
          apiGroups: ['bitnami.com'],
          resources: ['sealedsecrets'],
          verbs: ['get', 'list', 'watch'],
        },
        { apiGroups: ['bitnami.com'], resources: ['sealedsecrets/status'], verbs: ['update'] },
        {
          apiGroups: [''],
          resources: ['secrets'],
          verbs: ['get', 'list', 'create', 'update', 'delete', 'watch'],
        },
        { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: o.namespace }],
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: o.namespace, labels },
      spec: {
        replicas: 1,
        // hostNetwork on one node: a rolling update could not bind the ports.
        strategy: { type: 'Recreate' },
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: name,
            hostNetwork: true,
            tolerations: [o.toleration],
            securityContext: {
              runAsNonRoot: true,
              runAsUser: 1001,
              seccompProfile: { type: 'RuntimeDefault' },
            },
            containers: [
              {
                name: 'controller',
                image: o.image,
                args: [
                  // The host's network is shared by everything on the node.
                  `--listen-addr=127.0.0.1:${o.listenPort}`,
                  `--listen-metrics-addr=127.0.0.1:${o.metricsPort}`,
                  // 2048 instead of the default 4096: the format is the same,
                  // key generation is much cheaper on a shared 2-core host.
                  '--key-size=2048',
                ],
                env: [
                  // No kube-proxy: the service IP leads nowhere, the API server is on loopback.
                  { name: 'KUBERNETES_SERVICE_HOST', value: '127.0.0.1' },
                  { name: 'KUBERNETES_SERVICE_PORT', value: o.apiPort },
                  {
                    name: 'POD_NAMESPACE',
                    valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } },
                  },
                ],
                readinessProbe: {
                  httpGet: { host: '127.0.0.1', port: o.listenPort, path: '/healthz' },
                  periodSeconds: 1,
                },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ['ALL'] },
                },
              },
            ],
          },
        },
      },
    },
  ];
}

async function poll<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`testenv: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * Installs Sealed Secrets into the sandbox the way its chart does (CRD,
 * ServiceAccount, ClusterRole(Binding), Deployment) with the controller as a
 * pod on the sandbox node, and waits until the controller has generated its
 * key Secret and is ready. The node must be up (`info.node`).
 */
export async function deploySealedSecretsController(
  info: SandboxInfo,
  o: { work: string; log?: Log; namespace?: string },
): Promise<SealedSecretsController> {
  const node = info.node;
  if (!node) throw new Error('testenv: the Sealed Secrets controller needs the sandbox node');
  const namespace = o.namespace ?? 'kube-system';
  const bins = await ensureSealedSecrets(o.log ?? (() => undefined));
  const image = await pushControllerImage(info.registry, bins.controller, o.work);
  const apiPort = new URL(info.apiServer).port || '443';
  const objects = controllerObjects({
    namespace,
    image,
    apiPort,
    listenPort: await freePort(),
    metricsPort: await freePort(),
    toleration: node.toleration,
  });
  const stop = async (): Promise<void> => {
    const list = JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects });
    await kubectl(info, ['delete', '--ignore-not-found', '--wait=true', '-f', '-'], list);
    await kubectl(info, [
      'delete',
      'secret',
      '-n',
      namespace,
      '-l',
      KEY_LABEL,
      '--ignore-not-found',
    ]);
    await kubectl(info, ['delete', '--ignore-not-found', '--wait=true', '-f', bins.crd]);
  };
  try {
    await kubectl(info, ['apply', '-f', bins.crd]);
    await kubectl(info, [
      'wait',
      '--for=condition=established',
      '--timeout=60s',
      'crd/sealedsecrets.bitnami.com',
    ]);
    await kubectl(
      info,
      ['apply', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }),
    );
    await kubectl(info, [
      'rollout',
      'status',
      `deployment/${CONTROLLER_NAME}`,
      '-n',
      namespace,
      '--timeout=180s',
    ]);
    const certPem = await poll(
      'the controller key Secret',
      async () => {
        const out = await kubectl(info, [
          'get',
          'secret',
          '-n',
          namespace,
          '-l',
          `${KEY_LABEL}=active`,
          '-o',
          'jsonpath={.items[0].data.tls\\.crt}',
        ]);
        return out.trim() ? Buffer.from(out.trim(), 'base64').toString('utf8') : undefined;
      },
      120_000,
    );
    return { namespace, name: CONTROLLER_NAME, kubeseal: bins.kubeseal, image, certPem, stop };
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}
