import type { V1Pod } from '@kubernetes/client-node';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { ttlSeconds } from '../cli/commands/cluster.js';
import { UserError } from '../core/errors.js';
import { protectAnnotations } from '../protect/annotations.js';
import { MigrationPlanSchema } from '../plan/schema.js';
import {
  computeChanges,
  desiredState,
  jwtRoleBody,
  jwtRoleDifferences,
  policyName,
} from '../vault/provision.js';
import { decide } from '../webhook/mutate.js';
import { readFingerprintFile, renderFingerprintFile, type FingerprintFile } from './file.js';
import { certificates, fingerprintOf, judgeCluster } from './identity.js';
import { planRegister } from './register.js';

// Two syntactically valid PEM blocks (the hash reads the base64 bodies only).
const CERT_1 = '-----BEGIN CERTIFICATE-----\nQUJDRA==\nRUZHSA==\n-----END CERTIFICATE-----\n';
const CERT_2 = '-----BEGIN CERTIFICATE-----\nSUpLTA==\n-----END CERTIFICATE-----\n';
const facts = {
  issuer: 'https://kubernetes.default.svc.cluster.local',
  kubeSystemUid: '0b9c3c5e-7d37-4f5e-9c36-0a1c2b3d4e5f',
  caBundle: CERT_1 + CERT_2,
};

describe('cluster fingerprint', () => {
  it('is short, stable across PEM layout and order, and changes with each identifying fact', () => {
    const fp = fingerprintOf(facts);
    expect(fp).toMatch(/^sha256:[0-9a-f]{16}$/);
    expect(
      fingerprintOf({ ...facts, caBundle: `${CERT_2}\r\n${CERT_1.replace(/\n/g, '\r\n')}` }),
    ).toBe(fp);
    expect(fingerprintOf({ ...facts, kubeSystemUid: 'other' })).not.toBe(fp);
    expect(fingerprintOf({ ...facts, issuer: 'https://other' })).not.toBe(fp);
    expect(fingerprintOf({ ...facts, caBundle: CERT_1 })).not.toBe(fp);
    expect(certificates(facts.caBundle)).toHaveLength(2);
  });

  it('judges a plan: match, mismatch (overridable)', () => {
    expect(judgeCluster('sha256:a', 'sha256:a', false)).toEqual({ kind: 'match' });
    expect(judgeCluster('sha256:a', 'sha256:b', false)).toEqual({
      kind: 'mismatch',
      plan: 'sha256:a',
      current: 'sha256:b',
      overridden: false,
    });
    expect(judgeCluster('sha256:a', 'sha256:b', true)).toMatchObject({ overridden: true });
  });

  it('is accepted in plan metadata only in its own format', () => {
    const plan = (fp: string) => ({
      apiVersion: 'cloudtaser.io/v1',
      kind: 'MigrationPlan',
      metadata: { name: 'p', clusterFingerprint: fp },
      tenants: [],
    });
    expect(MigrationPlanSchema.safeParse(plan(fingerprintOf(facts))).success).toBe(true);
    const bad = MigrationPlanSchema.safeParse(plan('abc'));
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.message).toContain('metadata.clusterFingerprint');
  });
});

const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXJldmlld2Vy.c2ln';
const file = (extra: Partial<FingerprintFile> = {}): FingerprintFile => ({
  apiVersion: 'cloudtaser.io/v1',
  kind: 'ClusterFingerprint',
  fingerprint: fingerprintOf(facts),
  apiServer: 'https://10.0.0.1:6443',
  caSource: 'kube-root-ca.crt',
  serviceAccountKeys: [],
  ...facts,
  reviewer: {
    serviceAccount: 'kube-system/cloudtaser-token-reviewer',
    expiresAt: '2027-01-01T00:00:00.000Z',
    token: TOKEN,
  },
  ...extra,
});

describe('fingerprint file', () => {
  it('round-trips, and refuses an edited file without quoting its token', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ct-fp-'));
    const good = join(dir, 'good.yaml');
    const text = renderFingerprintFile(file());
    expect(text).toContain('# SECRET');
    await writeFile(good, text);
    expect(await readFingerprintFile(good, 'good.yaml')).toMatchObject({
      fingerprint: fingerprintOf(facts),
      reviewer: { token: TOKEN },
    });
    const edited = join(dir, 'edited.yaml');
    await writeFile(edited, text.replace(facts.kubeSystemUid, 'another-cluster'));
    const e = await readFingerprintFile(edited, 'edited.yaml').catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UserError);
    expect((e as Error).message).toContain('edited after it was written');
    expect((e as Error).message).not.toContain(TOKEN);
    const junk = join(dir, 'junk.yaml');
    await writeFile(junk, stringify({ kind: 'ClusterFingerprint', reviewer: { token: TOKEN } }));
    const j = await readFingerprintFile(junk, 'junk.yaml').catch((x: unknown) => x);
    expect(j).toBeInstanceOf(UserError);
    expect((j as Error).message).not.toContain(TOKEN);
  });
});

describe('register plan', () => {
  const o = { authPath: 'kubernetes-prod', display: 'fp.yaml' };
  it('enables and configures a new mount from the file, the host overridable', () => {
    const p = planRegister(
      file(),
      { ...o, kubernetesHost: 'https://api.prod.example.com' },
      undefined,
    );
    expect(p).toMatchObject({
      enable: true,
      describe: false,
      description: `cloudtaser cluster ${fingerprintOf(facts)}`,
      config: {
        kubernetes_host: 'https://api.prod.example.com',
        kubernetes_ca_cert: facts.caBundle,
        token_reviewer_jwt: TOKEN,
        disable_local_ca_jwt: true,
      },
    });
    expect(planRegister(file(), o, undefined)).toMatchObject({
      method: 'kubernetes',
      config: { kubernetes_host: 'https://10.0.0.1:6443' },
    });
  });
  it('--method jwt configures the public keys and issuer, no reviewer and no host', () => {
    const keyed = file({
      serviceAccountKeys: ['-----BEGIN PUBLIC KEY-----\nAA==\n-----END PUBLIC KEY-----\n'],
    });
    const { reviewer: _, ...noReviewer } = keyed;
    expect(planRegister(noReviewer, { ...o, method: 'jwt' }, undefined)).toEqual({
      method: 'jwt',
      authPath: 'kubernetes-prod',
      enable: true,
      describe: false,
      description: `cloudtaser cluster ${fingerprintOf(facts)}`,
      config: { jwt_validation_pubkeys: keyed.serviceAccountKeys, bound_issuer: facts.issuer },
    });
    expect(() => planRegister(file(), { ...o, method: 'jwt' }, undefined)).toThrow(
      /no service-account signing keys/,
    );
    expect(() => planRegister(keyed, { ...o, method: 'jwt' }, { type: 'kubernetes' })).toThrow(
      /not jwt/,
    );
  });
  it('describes an existing unnamed kubernetes mount; refuses another type, another cluster, no reviewer', () => {
    expect(planRegister(file(), o, { type: 'kubernetes', description: '' })).toMatchObject({
      enable: false,
      describe: true,
    });
    expect(() => planRegister(file(), o, { type: 'jwt' })).toThrow(/type "jwt"/);
    expect(() =>
      planRegister(file(), o, {
        type: 'kubernetes',
        description: 'cloudtaser cluster sha256:0123456789abcdef',
      }),
    ).toThrow(/registered for cluster sha256:0123456789abcdef/);
    const { reviewer: _, ...noReviewer } = file();
    expect(() => planRegister(noReviewer, o, undefined)).toThrow(/no reviewer token/);
  });
  it('reads reviewer lifetimes like 8760h, from 10 minutes to 10 years', () => {
    expect(ttlSeconds('8760h')).toBe(8760 * 3600);
    expect(ttlSeconds('30d')).toBe(30 * 86_400);
    expect(() => ttlSeconds('5m')).toThrow(UserError);
    expect(() => ttlSeconds('forever')).toThrow(UserError);
  });
});

describe('one vault, several clusters', () => {
  const plan = MigrationPlanSchema.parse({
    apiVersion: 'cloudtaser.io/v1',
    kind: 'MigrationPlan',
    metadata: { name: 'p' },
    tenants: [
      {
        name: 'shop',
        namespace: 'shop',
        workloads: [
          {
            kind: 'Deployment',
            name: 'api',
            serviceAccount: 'app',
            secrets: [
              { source: 'k8s-secret/db', vaultPath: 'secret/data/shop/db', fields: { p: 'P' } },
            ],
          },
        ],
      },
    ],
  });

  it('names a tenant policy per auth mount, keeping the default mount plain', () => {
    expect(policyName('shop')).toBe('shop-read');
    expect(policyName('shop', 'kubernetes-prod')).toBe('shop-read@kubernetes-prod');
    expect(policyName('shop', 'clusters/prod')).toBe('shop-read@clusters~prod');
    const a = desiredState(plan, { kvMount: 'secret', authPath: 'kubernetes-a' });
    const b = desiredState(plan, { kvMount: 'secret', authPath: 'kubernetes-b' });
    expect(a.roles[0]?.name).toBe(b.roles[0]?.name);
    expect(a.roles[0]?.body.token_policies).toEqual(['shop-read@kubernetes-a']);
    expect(b.policies.map((p) => p.name)).toEqual(['shop-read@kubernetes-b']);
    expect(
      desiredState(plan, { kvMount: 'secret', authPath: 'kubernetes' }).policies[0]?.name,
    ).toBe('shop-read');
  });

  it('writes the same role in JWT form on a JWT mount, and reads it back as unchanged', () => {
    const desired = desiredState(plan, { kvMount: 'secret', authPath: 'jwt-prod' });
    const role = desired.roles[0];
    if (!role) throw new Error('fixture');
    const jwt = jwtRoleBody(role.body);
    expect(jwt).toEqual({
      role_type: 'jwt',
      bound_audiences: ['cloudtaser'],
      user_claim: 'sub',
      bound_claims: { sub: ['system:serviceaccount:shop:app'] },
      token_policies: ['shop-read@jwt-prod'],
      token_ttl: role.body.token_ttl,
      token_max_ttl: role.body.token_max_ttl,
    });
    const state = (current?: Record<string, unknown>) => ({
      mounts: { 'secret/': { type: 'kv', options: { version: '2' } } },
      auths: { 'jwt-prod/': { type: 'jwt' } },
      authConfigured: true,
      policies: new Map([['shop-read@jwt-prod', desired.policies[0]?.hcl ?? '']]),
      roles: new Map(current ? [['shop-role', current]] : []),
    });
    expect(computeChanges(desired, state()).roles[0]).toMatchObject({
      action: 'create',
      body: jwt,
    });
    // As OpenBao returns it: a string claim value, and other fields of its own.
    const back = {
      ...jwt,
      bound_claims: { sub: 'system:serviceaccount:shop:app' },
      role_type: 'jwt',
      clock_skew_leeway: 0,
    };
    expect(computeChanges(desired, state(back)).roles[0]?.action).toBe('unchanged');
    expect(jwtRoleDifferences({ ...back, bound_audiences: ['other'] }, jwt)).toEqual([
      'bound_audiences',
    ]);
    expect(
      jwtRoleDifferences({ ...back, bound_claims: { sub: ['x'], extra: ['y'] } }, jwt),
    ).toEqual(['bound_claims']);
  });

  it("carries protect's --auth-path to the wrapper's mount through the webhook", () => {
    const tenant = plan.tenants[0];
    const workload = tenant?.workloads[0];
    if (!tenant || !workload) throw new Error('fixture');
    const vault = 'https://vault.eu.example.com';
    expect(protectAnnotations(tenant, workload, vault)).not.toHaveProperty([
      'cloudtaser.io/vault-auth-path',
    ]);
    const annotations = protectAnnotations(tenant, workload, vault, false, 'kubernetes-prod');
    expect(annotations['cloudtaser.io/vault-auth-path']).toBe('kubernetes-prod');
    const pod = (a: Record<string, string>): V1Pod => ({
      metadata: { name: 'p', annotations: a },
      spec: { containers: [{ name: 'app', image: 'app:1', command: ['/app'] }] },
    });
    const cfg = { initImage: 'init:1', authMountPath: 'auth/kubernetes' };
    const mountOf = (a: Record<string, string>): unknown => {
      const d = decide(pod(a), cfg);
      if (!d.allowed) return d.message;
      const env = JSON.stringify(d.patch);
      return /"VAULT_AUTH_MOUNT_PATH","value":"([^"]+)"/.exec(env)?.[1];
    };
    expect(mountOf(annotations)).toBe('auth/kubernetes-prod');
    expect(mountOf(protectAnnotations(tenant, workload, vault))).toBe('auth/kubernetes');
    expect(mountOf({ ...annotations, 'cloudtaser.io/vault-auth-path': '/auth/x y' })).toMatch(
      /vault-auth-path must be a vault mount path/,
    );
  });
});
