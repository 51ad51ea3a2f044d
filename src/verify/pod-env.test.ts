import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import {
  BEGIN,
  END,
  parsePodRef,
  parseProbeLog,
  pickContainer,
  pickPod,
  secretNames,
  selectorString,
  verdicts,
} from './pod-env.js';

const pod = (over: {
  name?: string;
  phase?: string;
  ready?: boolean;
  at?: string;
  annotations?: Record<string, string>;
  deleting?: boolean;
  spec?: V1Pod['spec'];
}): V1Pod => ({
  metadata: {
    name: over.name ?? 'p',
    creationTimestamp: new Date(over.at ?? '2026-04-01T10:00:00Z'),
    ...(over.annotations ? { annotations: over.annotations } : {}),
    ...(over.deleting ? { deletionTimestamp: new Date() } : {}),
  },
  spec: over.spec ?? { containers: [{ name: 'app' }] },
  status: {
    phase: over.phase ?? 'Running',
    conditions: [{ type: 'Ready', status: over.ready === false ? 'False' : 'True' }],
  },
});

describe('parsePodRef', () => {
  it('reads the forms kubectl accepts', () => {
    expect(parsePodRef('deploy/payment-api')).toEqual({ kind: 'Deployment', name: 'payment-api' });
    expect(parsePodRef('deployment.apps/a')).toEqual({ kind: 'Deployment', name: 'a' });
    expect(parsePodRef('sts/db')).toEqual({ kind: 'StatefulSet', name: 'db' });
    expect(parsePodRef('daemonset/x')).toEqual({ kind: 'DaemonSet', name: 'x' });
    expect(parsePodRef('pod/a-1')).toEqual({ kind: 'Pod', name: 'a-1' });
    expect(parsePodRef('a-1')).toEqual({ kind: 'Pod', name: 'a-1' });
  });
  it('refuses other kinds and bad names', () => {
    expect(parsePodRef('job/x')).toBeUndefined();
    expect(parsePodRef('deploy/')).toBeUndefined();
    expect(parsePodRef('deploy/Bad_Name')).toBeUndefined();
  });
});

describe('selectorString', () => {
  it('writes labels and expressions in the query form', () => {
    expect(
      selectorString({
        matchLabels: { app: 'a' },
        matchExpressions: [
          { key: 'tier', operator: 'In', values: ['web', 'api'] },
          { key: 'x', operator: 'NotIn', values: ['y'] },
          { key: 'e', operator: 'Exists' },
          { key: 'd', operator: 'DoesNotExist' },
        ],
      }),
    ).toBe('app=a,tier in (web,api),x notin (y),e,!d');
    expect(selectorString({})).toBeUndefined();
    expect(selectorString({ matchExpressions: [{ key: 'k', operator: 'Gt' }] })).toBeUndefined();
  });
});

describe('pickPod and pickContainer', () => {
  it('prefers running, Ready, newest pods and skips terminating ones', () => {
    const old = pod({ name: 'old', at: '2026-04-01T09:00:00Z' });
    const fresh = pod({ name: 'fresh', at: '2026-04-01T11:00:00Z' });
    const unready = pod({ name: 'unready', at: '2026-04-01T12:00:00Z', ready: false });
    const pending = pod({ name: 'pending', phase: 'Pending' });
    const going = pod({ name: 'going', at: '2026-04-01T13:00:00Z', deleting: true });
    expect(pickPod([old, unready, fresh, pending, going])?.metadata?.name).toBe('fresh');
    expect(pickPod([unready, pending])?.metadata?.name).toBe('unready');
    expect(pickPod([pending])).toBeUndefined();
  });
  it('takes --container, then the default-container annotation, then the first', () => {
    const p = pod({
      spec: { containers: [{ name: 'side' }, { name: 'app' }] },
      annotations: { 'kubectl.kubernetes.io/default-container': 'app' },
    });
    expect(pickContainer(p, undefined)).toMatchObject({ name: 'app' });
    expect(pickContainer(p, 'side')).toMatchObject({ name: 'side' });
    expect(pickContainer(p, 'nope')).toBe('the pod has no container "nope" (it has: side, app)');
    expect(pickContainer(pod({}), undefined)).toMatchObject({ name: 'app' });
  });
});

describe('secretNames', () => {
  it("joins the env-map's names, the container's secretKeyRef names and --env", () => {
    const p = pod({
      annotations: {
        'cloudtaser.io/env-map':
          'secret/data/p/db:password=DB_PASS,secret/data/p/db:username=DB_USER',
      },
    });
    const c = {
      name: 'app',
      env: [
        { name: 'API_KEY', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } },
        { name: 'PLAIN', value: 'x' },
      ],
    };
    expect(secretNames(p, c, ['EXTRA'])).toEqual(['API_KEY', 'DB_PASS', 'DB_USER', 'EXTRA']);
    expect(secretNames(pod({}), { name: 'app' }, [])).toEqual([]);
  });
});

describe('parseProbeLog and verdicts', () => {
  it('reads the names between the markers', () => {
    const r = parseProbeLog(
      `${BEGIN}\ncloudtaser-verify-pod pid1 cloudtaser-wrap\nPATH\nHOSTNAME\nHOME\n${END}\n`,
    );
    expect(r).toEqual({ ok: true, pid1: 'cloudtaser-wrap', names: ['HOME', 'HOSTNAME', 'PATH'] });
  });
  it('an unreadable environ is an error with the shell’s reason, never an empty list', () => {
    const r = parseProbeLog(
      `${BEGIN}\ncloudtaser-verify-pod pid1 cloudtaser-wrap\nsh: can't open '/proc/1/environ': Permission denied\ncloudtaser-verify-pod unreadable\n${END}\n`,
    );
    expect(r).toEqual({
      ok: false,
      reason:
        "cannot read PID 1's environment (sh: can't open '/proc/1/environ': Permission denied)",
    });
  });
  it('a log without both markers is an error', () => {
    expect(parseProbeLog('')).toMatchObject({ ok: false });
    expect(parseProbeLog(`${BEGIN}\nPATH\n`)).toMatchObject({ ok: false });
  });
  it('reports each secret name and every VAULT_*/CLOUDTASER_* name found', () => {
    expect(verdicts(['PATH', 'DB_PASS', 'VAULT_ADDR'], ['DB_PASS', 'DB_USER'])).toEqual([
      { name: 'DB_PASS', present: true },
      { name: 'DB_USER', present: false },
      { name: 'VAULT_ADDR', present: true },
    ]);
    expect(verdicts(['PATH'], ['DB_PASS'])).toEqual([{ name: 'DB_PASS', present: false }]);
  });
});
