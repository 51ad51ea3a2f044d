import { describe, expect, it } from 'vitest';
import { parsePlan } from '../read.js';
import {
  CONTENT_FORMAT,
  contentValue,
  diffContent,
  parseContent,
  signedContent,
} from './content.js';

const PLAN = `apiVersion: cloudtaser.io/v1
kind: MigrationPlan
metadata:
  name: migration-plan
  createdBy: platform-team
tenants:
  - name: payments
    namespace: payments
    workloads:
      - kind: Deployment
        name: payment-api
        replicas: 3
        secrets:
          - source: k8s-secret/db-credentials
            vaultPath: secret/data/payments/db-credentials
            fields:
              username: DB_USER
              password: DB_PASS
            files:
              tls.key: {path: /etc/tls/tls.key, mountPath: /etc/tls, mode: "0440"}
        status: pending
      - kind: StatefulSet
        name: ledger
        serviceAccount: ledger
        secrets:
          - source: k8s-secret/ledger
            vaultPath: secret/data/payments/ledger
            fields: {"1": ONE, "10": TEN, "2": TWO}
        status: migrated
  - name: trading
    namespace: trading
    workloads:
      - kind: Deployment
        name: order-router
        secrets:
          - source: k8s-secret/api-key
            vaultPath: secret/data/trading/api-key
            fields:
              key: API_KEY
`;

const content = (text: string): string =>
  signedContent(parsePlan(text, 'plan.yaml').plan).toString('utf8');
const diff = (before: string, after: string): string[] =>
  diffContent(contentValue(parsePlan(before, 'a').plan), contentValue(parsePlan(after, 'b').plan));

describe('signed content', () => {
  it('covers every reviewed value and no workload status', () => {
    const c = content(PLAN);
    const v = JSON.parse(c) as { format: string; plan: unknown };
    expect(v.format).toBe(CONTENT_FORMAT);
    for (const s of [
      'migration-plan',
      'platform-team',
      'payments',
      'payment-api',
      'secret/data/payments/db-credentials',
      'DB_PASS',
      '/etc/tls/tls.key',
      '0440',
      'ledger',
      'order-router',
      'API_KEY',
    ]) {
      expect(c).toContain(JSON.stringify(s));
    }
    expect(c).toContain('"replicas": 3');
    expect(c).not.toContain('status');
    expect(c).not.toContain('pending');
    expect(c).not.toContain('migrated');
    // Parsed back, it is the same value (the copy kept with a signature).
    expect(parseContent(c)).toEqual(JSON.parse(c));
  });

  it('is the same for the same plan written differently', () => {
    const reformatted = `# reviewed by security, SEC-42
apiVersion: "cloudtaser.io/v1"
kind: MigrationPlan
metadata: {createdBy: platform-team, name: 'migration-plan'}
tenants:
  - name: trading   # second team
    namespace: trading
    workloads:
      - name: order-router
        kind: Deployment
        serviceAccount: default
        secrets:
          - {source: k8s-secret/api-key, vaultPath: secret/data/trading/api-key, fields: {key: API_KEY}, files: {}}
        status: migrated
  - name: payments
    namespace: payments
    workloads:
      - kind: StatefulSet
        name: ledger
        serviceAccount: ledger
        secrets:
          - source: k8s-secret/ledger
            vaultPath: secret/data/payments/ledger
            fields: {"2": TWO, "10": TEN, "1": ONE}
      - kind: Deployment
        name: payment-api
        replicas: 3
        status: skipped
        secrets:
          - source: k8s-secret/db-credentials
            vaultPath: secret/data/payments/db-credentials
            files:
              tls.key: {mode: "0440", mountPath: /etc/tls, path: /etc/tls/tls.key}
            fields:
              password: DB_PASS
              username: DB_USER
`;
    expect(content(reformatted)).toBe(content(PLAN));
  });

  it('orders keys by code unit, integer-like ones included', () => {
    const c = content(PLAN);
    const one = c.indexOf('"1": "ONE"');
    const ten = c.indexOf('"10": "TEN"');
    const two = c.indexOf('"2": "TWO"');
    expect(one).toBeGreaterThan(0);
    expect(one < ten && ten < two).toBe(true);
  });

  it('names each change, with the item it is in', () => {
    expect(diff(PLAN, PLAN)).toEqual([]);
    expect(
      diff(PLAN, PLAN.replace('secret/data/payments/db-credentials', 'secret/data/payments/db')),
    ).toEqual([
      'tenant payments, Deployment payment-api, secret k8s-secret/db-credentials: vaultPath "secret/data/payments/db-credentials" -> "secret/data/payments/db"',
    ]);
    expect(diff(PLAN, PLAN.replace('password: DB_PASS', 'password: DB_PASSWORD'))).toEqual([
      'tenant payments, Deployment payment-api, secret k8s-secret/db-credentials: fields.password "DB_PASS" -> "DB_PASSWORD"',
    ]);
    expect(diff(PLAN, PLAN.replace('name: order-router', 'name: order-router-v2'))).toEqual([
      'tenant trading: Deployment order-router removed',
      'tenant trading: Deployment order-router-v2 added',
    ]);
    expect(diff(PLAN, PLAN.replace('serviceAccount: ledger', 'serviceAccount: admin'))).toEqual([
      'tenant payments, StatefulSet ledger: serviceAccount "ledger" -> "admin"',
    ]);
    expect(diff(PLAN, PLAN.replace('mode: "0440"', 'mode: "0444"'))).toEqual([
      'tenant payments, Deployment payment-api, secret k8s-secret/db-credentials: files["tls.key"].mode "0440" -> "0444"',
    ]);
    expect(
      diff(
        PLAN,
        PLAN.replace(
          '              key: API_KEY\n',
          '              key: API_KEY\n              extra: EXTRA\n',
        ),
      ),
    ).toEqual([
      'tenant trading, Deployment order-router, secret k8s-secret/api-key: fields.extra added ("EXTRA")',
    ]);
    expect(diff(PLAN, PLAN.replace('  createdBy: platform-team\n', ''))).toEqual([
      'metadata.createdBy removed (was "platform-team")',
    ]);
    const withoutTrading = PLAN.slice(0, PLAN.indexOf('  - name: trading'));
    expect(diff(PLAN, withoutTrading)).toEqual(['tenant trading removed']);
    // Status is not part of it.
    expect(diff(PLAN, PLAN.replace('status: pending', 'status: migrated'))).toEqual([]);
  });
});
