// `target install`: the manifests that run the webhook in a cluster. Pure.
//
// Failure policy: Fail by default. The webhook only sees Pods annotated
// cloudtaser.io/inject: "true" (matchConditions), so an outage blocks only
// the creation of Pods that asked for protection — they would otherwise
// start without their secrets, or with the native Secrets they are leaving.
// The system namespaces and the webhook's own are never sent to it.
//
// The Helm chart (charts/cloudtaser) renders the same objects from the same
// settings (a test compares them); change both together.
import { stringify } from 'yaml';
import { ANNOTATION } from '../contract/annotations.js';
import { SYSTEM_NAMESPACES } from '../contract/workload.js';

/**
 * The CEL condition that keeps every pod without the inject annotation away
 * from the webhook, so failure policy Fail cannot block unrelated pods.
 */
export const INJECT_MATCH_EXPRESSION = `has(object.metadata.annotations) && '${ANNOTATION.inject}' in object.metadata.annotations && object.metadata.annotations['${ANNOTATION.inject}'] == 'true'`;

/**
 * Name of the ValidatingAdmissionPolicy rendered with failure policy Ignore:
 * the API server itself then refuses an annotated pod the webhook did not
 * inject, so an outage cannot let one start without its secrets unnoticed.
 */
export const GUARD_NAME = 'cloudtaser-injected';

/** The guard's check, after every mutating webhook has run. */
export const GUARD_EXPRESSION =
  "has(object.spec.initContainers) && object.spec.initContainers.exists(c, c.name == 'cloudtaser-init')";

export interface InstallOptions {
  namespace: string;
  image: string;
  initImage: string;
  replicas: number;
  failurePolicy: 'Fail' | 'Ignore';
  /** cert-manager issues and rotates the serving certificate and injects the CA. */
  certManager: boolean;
  /** Bring your own: a kubernetes.io/tls Secret and the CA that signed it (PEM). */
  tlsSecret?: string | undefined;
  caBundle?: string | undefined;
  /** Let the webhook read image pull secrets, for images whose command it must look up. */
  registryAuth: boolean;
  authMountPath: string;
  /** `webhook serve --review-timeout`; below the webhook's 10 s timeoutSeconds. */
  reviewTimeoutSeconds?: number;
  /** `webhook serve --tls-check-interval`: how soon a renewed certificate is taken. */
  tlsCheckIntervalSeconds?: number;
}

const NAME = 'cloudtaser-webhook';

export function installManifests(o: InstallOptions): Record<string, unknown>[] {
  const labels = { 'app.kubernetes.io/name': NAME, 'app.kubernetes.io/part-of': 'cloudtaser' };
  const tlsSecret = o.tlsSecret ?? `${NAME}-tls`;
  const namespaceSelector = {
    matchExpressions: [
      {
        key: 'kubernetes.io/metadata.name',
        operator: 'NotIn',
        values: [...SYSTEM_NAMESPACES, o.namespace],
      },
    ],
  };
  const out: Record<string, unknown>[] = [
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name: o.namespace,
        labels: { 'pod-security.kubernetes.io/enforce': 'restricted' },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: NAME, namespace: o.namespace, labels },
    },
  ];
  if (o.registryAuth) {
    out.push(
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: `${NAME}-pull-secrets`, labels },
        rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: `${NAME}-pull-secrets`, labels },
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: `${NAME}-pull-secrets`,
        },
        subjects: [{ kind: 'ServiceAccount', name: NAME, namespace: o.namespace }],
      },
    );
  }
  if (o.certManager && !o.tlsSecret) {
    out.push(
      {
        apiVersion: 'cert-manager.io/v1',
        kind: 'Issuer',
        metadata: { name: `${NAME}-selfsigned`, namespace: o.namespace, labels },
        spec: { selfSigned: {} },
      },
      {
        apiVersion: 'cert-manager.io/v1',
        kind: 'Certificate',
        metadata: { name: NAME, namespace: o.namespace, labels },
        spec: {
          secretName: tlsSecret,
          dnsNames: [`${NAME}.${o.namespace}.svc`, `${NAME}.${o.namespace}.svc.cluster.local`],
          issuerRef: { name: `${NAME}-selfsigned`, kind: 'Issuer' },
          duration: '2160h',
          renewBefore: '360h',
        },
      },
    );
  }
  out.push(
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: NAME, namespace: o.namespace, labels },
      spec: {
        replicas: o.replicas,
        selector: { matchLabels: { 'app.kubernetes.io/name': NAME } },
        // A new pod is Ready before an old one goes: the webhook never has
        // fewer serving pods than asked for during a rollout.
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
        template: {
          metadata: { labels },
          spec: {
            serviceAccountName: NAME,
            securityContext: {
              runAsNonRoot: true,
              runAsUser: 65532,
              runAsGroup: 65532,
              seccompProfile: { type: 'RuntimeDefault' },
            },
            // Spread over nodes, so one node going down leaves a webhook serving.
            affinity: {
              podAntiAffinity: {
                preferredDuringSchedulingIgnoredDuringExecution: [
                  {
                    weight: 100,
                    podAffinityTerm: {
                      topologyKey: 'kubernetes.io/hostname',
                      labelSelector: { matchLabels: { 'app.kubernetes.io/name': NAME } },
                    },
                  },
                ],
              },
            },
            containers: [
              {
                name: 'webhook',
                image: o.image,
                args: [
                  '--tls-cert',
                  '/tls/tls.crt',
                  '--tls-key',
                  '/tls/tls.key',
                  '--port',
                  '8443',
                  '--init-image',
                  o.initImage,
                  '--auth-mount-path',
                  o.authMountPath,
                  '--review-timeout',
                  String(o.reviewTimeoutSeconds ?? 8),
                  '--tls-check-interval',
                  String(o.tlsCheckIntervalSeconds ?? 10),
                ],
                ports: [{ name: 'https', containerPort: 8443 }],
                // A deleted pod keeps serving while the Service's endpoints
                // (and the API server's view of them) catch up; the webhook
                // then drains on SIGTERM.
                lifecycle: { preStop: { sleep: { seconds: 5 } } },
                readinessProbe: { httpGet: { path: '/readyz', port: 8443, scheme: 'HTTPS' } },
                livenessProbe: { httpGet: { path: '/healthz', port: 8443, scheme: 'HTTPS' } },
                resources: {
                  requests: { cpu: '50m', memory: '64Mi' },
                  limits: { memory: '256Mi' },
                },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  readOnlyRootFilesystem: true,
                  capabilities: { drop: ['ALL'] },
                },
                volumeMounts: [{ name: 'tls', mountPath: '/tls', readOnly: true }],
              },
            ],
            volumes: [{ name: 'tls', secret: { secretName: tlsSecret } }],
          },
        },
      },
    },
    {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: NAME, namespace: o.namespace, labels },
      spec: {
        maxUnavailable: 1,
        selector: { matchLabels: { 'app.kubernetes.io/name': NAME } },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: NAME, namespace: o.namespace, labels },
      spec: {
        selector: { 'app.kubernetes.io/name': NAME },
        ports: [{ name: 'https', port: 443, targetPort: 8443 }],
      },
    },
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: {
        name: 'cloudtaser',
        labels,
        ...(o.certManager && !o.tlsSecret
          ? { annotations: { 'cert-manager.io/inject-ca-from': `${o.namespace}/${NAME}` } }
          : {}),
      },
      webhooks: [
        {
          name: 'inject.cloudtaser.io',
          admissionReviewVersions: ['v1'],
          sideEffects: 'None',
          failurePolicy: o.failurePolicy,
          reinvocationPolicy: 'IfNeeded',
          timeoutSeconds: 10,
          clientConfig: {
            service: { name: NAME, namespace: o.namespace, path: '/mutate', port: 443 },
            ...(o.caBundle ? { caBundle: Buffer.from(o.caBundle).toString('base64') } : {}),
          },
          rules: [
            { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] },
          ],
          namespaceSelector,
          matchConditions: [
            {
              name: 'cloudtaser-inject-annotation',
              expression: INJECT_MATCH_EXPRESSION,
            },
          ],
        },
      ],
    },
  );
  if (o.failurePolicy === 'Ignore') out.push(...guardManifests(namespaceSelector, labels));
  return out;
}

/**
 * The guard for failure policy Ignore: a ValidatingAdmissionPolicy (run by
 * the API server, no webhook to be down) that refuses an annotated pod
 * without cloudtaser-init, in the namespaces the webhook serves.
 */
export function guardManifests(
  namespaceSelector: Record<string, unknown>,
  labels: Record<string, string>,
): Record<string, unknown>[] {
  return [
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name: GUARD_NAME, labels },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: {
          resourceRules: [
            { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] },
          ],
          namespaceSelector,
        },
        matchConditions: [
          { name: 'cloudtaser-inject-annotation', expression: INJECT_MATCH_EXPRESSION },
        ],
        validations: [
          {
            expression: GUARD_EXPRESSION,
            message:
              'pod is annotated cloudtaser.io/inject=true but the cloudtaser webhook did not inject it (no webhook answered); create it again once the webhook is Ready',
          },
        ],
      },
    },
    {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name: GUARD_NAME, labels },
      spec: { policyName: GUARD_NAME, validationActions: ['Deny'] },
    },
  ];
}

export function renderYaml(objects: readonly Record<string, unknown>[]): string {
  return objects.map((o) => `---\n${stringify(o, { lineWidth: 0 })}`).join('');
}
