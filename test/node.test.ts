// The sandbox's real node: a Deployment's pod really runs (exec, logs), and
// the host comes out exactly as it went in — after `stop`, and after the
// owner is SIGKILLed (the watchdog's path). Each test starts its own sandbox
// with a node in a temp dir; the node lock makes concurrent node starts wait.
// One node per machine: this file runs in its own vitest project (`node`),
// after the integration run whose global sandbox holds the node (see
// test/setup/run-vitest.sh), with no global setup of its own.
//
// These tests never skip: a machine that cannot run containers fails them
// with the node start's one-line reason.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { chmod, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NODE_TOLERATION } from '../testenv/node.js';
import { cacheRoot, projectRoot } from '../testenv/paths.js';
import { startSandbox } from '../testenv/sandbox.js';
import { tempDir } from './helpers/cli.js';
import { withNodeTestLock } from './helpers/node.js';
import { eventually } from './helpers/sandbox.js';

const SYSCTLS = [
  'vm/overcommit_memory',
  'vm/panic_on_oom',
  'kernel/panic',
  'kernel/panic_on_oops',
  'kernel/keys/root_maxkeys',
  'kernel/keys/root_maxbytes',
];

/** Host paths the kubelet and containerd write to whatever they are told. */
const PATHS = [
  '/var/lib/kubelet',
  '/var/log/containers',
  '/var/log/pods',
  '/run/containerd',
  '/var/lib/containerd',
  '/opt/containerd',
  '/etc/cni',
];

function listTree(root: string): string[] {
  if (!existsSync(root)) return [`${root}: absent`];
  const out: string[] = [];
  const walk = (d: string): void => {
    out.push(d);
    if (!statSync(d).isDirectory()) return;
    for (const e of readdirSync(d).sort()) walk(join(d, e));
  };
  walk(root);
  return out;
}

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** What the node could change on the host, read independently of the code under test. */
interface HostSnapshot {
  mountinfo: string[];
  cgroups: string[];
  iptables: string[];
  sysctls: string[];
  files: string[];
  processes: string[];
}

function hostSnapshot(): HostSnapshot {
  const cgroups: string[] = [];
  for (const h of readdirSync('/sys/fs/cgroup')) {
    const base = join('/sys/fs/cgroup', h);
    try {
      for (const e of readdirSync(base)) {
        if (statSync(join(base, e)).isDirectory()) cgroups.push(join(base, e));
      }
    } catch {
      // not a directory
    }
  }
  const ps = execFileSync('ps', ['-eo', 'pid=,stat=,args='], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => !/^\s*\d+\s+Z/.test(l))
    .filter((l) =>
      /containerd|kubelet|kube-scheduler|\/pause|unshare --mount|sleep infinity|hello-from-node/.test(
        l,
      ),
    )
    .map((l) => l.trim().replace(/\s+/, ' '));
  return {
    mountinfo: readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n'),
    cgroups: cgroups.sort(),
    iptables: has('iptables-save')
      ? execFileSync('iptables-save', { encoding: 'utf8' })
          .split('\n')
          .filter((l) => !l.startsWith('#'))
          .map((l) => l.replace(/\[\d+:\d+\]/, ''))
      : ['iptables-save: absent'],
    sysctls: SYSCTLS.map((s) =>
      existsSync(`/proc/sys/${s}`) ? `${s}=${readFileSync(`/proc/sys/${s}`, 'utf8').trim()}` : s,
    ),
    files: PATHS.flatMap(listTree),
    processes: ps.sort(),
  };
}

function run(
  cmd: string,
  args: string[],
  input?: string,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      resolve({ code, out });
    });
    child.stdin.end(input ?? '');
  });
}

const deployment = (name: string, image: string): string =>
  JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'default' },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          hostNetwork: true,
          tolerations: [NODE_TOLERATION],
          terminationGracePeriodSeconds: 1,
          containers: [
            {
              name: 'app',
              image,
              command: [
                'sh',
                '-c',
                'echo hello-from-node-pod; trap "exit 0" TERM; while true; do sleep 1; done',
              ],
            },
          ],
        },
      },
    },
  });

/** Creates the Deployment and waits until its pod is Running and Ready on the node. */
async function runPod(
  kubectl: string,
  kubeconfig: string,
  name: string,
  image: string,
): Promise<void> {
  const k = (args: string[], input?: string) =>
    run(kubectl, [`--kubeconfig=${kubeconfig}`, ...args], input);
  const applied = await k(['apply', '-f', '-'], deployment(name, image));
  expect(applied.code, applied.out).toBe(0);
  const rolled = await k(['rollout', 'status', `deployment/${name}`, '--timeout=90s']);
  expect(rolled.code, rolled.out).toBe(0);
  const pods = await k([
    'get',
    'pods',
    '-l',
    `app=${name}`,
    '-o',
    'jsonpath={.items[0].spec.nodeName} {.items[0].status.phase}',
  ]);
  expect(pods.out).toBe('127.0.0.1 Running');
}

const log = (line: string): void => {
  console.error(line);
};

describe('sandbox node', () => {
  it(
    'runs a Deployment pod (exec, logs) and stop leaves the host as found',
    () =>
      withNodeTestLock(async () => {
        const before = hostSnapshot();
        const sb = await startSandbox({ node: true, log });
        let stopped = false;
        try {
          expect(sb.info.node?.name).toBe('127.0.0.1');
          const kubectl = sb.info.binaries.kubectl;
          const k = (args: string[]) =>
            run(kubectl, [`--kubeconfig=${sb.info.kubeconfig}`, ...args]);
          await runPod(kubectl, sb.info.kubeconfig, 'node-app', sb.info.node?.images.busybox ?? '');

          const exec = await k([
            'exec',
            'deployment/node-app',
            '--',
            'sh',
            '-c',
            'echo exec:$(cat /var/run/secrets/kubernetes.io/serviceaccount/namespace)',
          ]);
          expect(exec.out.trim()).toBe('exec:default');
          const logs = await k(['logs', 'deployment/node-app']);
          expect(logs.out).toContain('hello-from-node-pod');

          // While the node runs, the kubelet's writes stay in its namespace.
          const during = hostSnapshot();
          expect(during.sysctls).toEqual(before.sysctls);
          expect(during.mountinfo).toEqual(before.mountinfo);
          expect(during.iptables).toEqual(before.iptables);

          await sb.stop();
          stopped = true;
          expect(hostSnapshot()).toEqual(before);
          expect(existsSync(sb.info.dir)).toBe(false);
        } finally {
          if (!stopped) await sb.stop();
        }
      }),
    400_000,
  );

  it(
    'leaves the host as found when the owner is SIGKILLed with a pod running',
    () =>
      withNodeTestLock(async () => {
        const before = hostSnapshot();
        const child = spawn(
          process.execPath,
          ['--import', 'tsx', join(projectRoot, 'test', 'fixtures', 'node-owner.ts')],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let out = '';
        let err = '';
        child.stdout.on('data', (b: Buffer) => (out += b.toString()));
        child.stderr.on('data', (b: Buffer) => (err += b.toString()));
        try {
          type OwnerInfo = { dir: string; kubeconfig: string; kubectl: string; busybox: string };
          const info: OwnerInfo = await eventually(
            'the owner to bring up a sandbox with a node',
            () => {
              if (child.exitCode !== null) throw new Error(`owner exited: ${err.trim()}`);
              const line = out.split('\n').find((l) => l.startsWith('{'));
              return Promise.resolve(line ? (JSON.parse(line) as OwnerInfo) : undefined);
            },
            300_000,
          );
          await runPod(info.kubectl, info.kubeconfig, 'orphan-app', info.busybox);
          expect(hostSnapshot().processes.some((p) => p.includes('hello-from-node-pod'))).toBe(
            true,
          );

          child.kill('SIGKILL');

          await eventually(
            'the host to be as found',
            () => {
              const now = hostSnapshot();
              return Promise.resolve(
                JSON.stringify(now) === JSON.stringify(before) ? now : undefined,
              );
            },
            60_000,
          ).catch(() => {
            // The precise difference, not just a timeout.
            expect(hostSnapshot()).toEqual(before);
          });
          // The watchdog removes the state dir last.
          await eventually(
            'the state dir to go',
            () => Promise.resolve(existsSync(info.dir) ? undefined : true),
            30_000,
          );
        } finally {
          child.kill('SIGKILL');
        }
      }),
    400_000,
  );

  it(
    'makes a second node start on the machine wait until the first node stops',
    () =>
      withNodeTestLock(async () => {
        const first = await startSandbox({ node: true, log });
        const lines: string[] = [];
        let second: Awaited<ReturnType<typeof startSandbox>> | undefined;
        const starting = startSandbox({
          node: true,
          log: (l) => {
            lines.push(l);
          },
        }).then((sb) => (second = sb));
        try {
          await eventually(
            'the second start to wait for the node lock',
            () =>
              Promise.resolve(
                lines.some((l) => l.includes('waiting for another sandbox node'))
                  ? true
                  : undefined,
              ),
            120_000,
          );
          expect(second).toBeUndefined();
          // Still one kubelet: the first one's.
          expect(hostSnapshot().processes.filter((p) => /\/kubelet --config/.test(p))).toHaveLength(
            1,
          );
          await first.stop();
          const sb = await starting;
          expect(sb.info.node?.name).toBe('127.0.0.1');
          await sb.stop();
        } finally {
          await first.stop().catch(() => undefined);
          await starting.then((sb) => sb.stop()).catch(() => undefined);
        }
      }),
    400_000,
  );

  it('refuses in one line, before building or starting anything, when not root', async () => {
    const dir = join(await tempDir('ct-node-nonroot-'), 'sandbox');
    await chmod(dirname(dir), 0o777);
    const r = await run('setpriv', [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      'env',
      'HOME=/tmp',
      `CLOUDTASER_SANDBOX_DIR=${dir}`,
      `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`,
      process.execPath,
      '--import',
      'tsx',
      join(projectRoot, 'testenv', 'cli.ts'),
      'up',
      '--node',
    ]);
    expect(r.code).toBe(1);
    expect(r.out.trim()).toBe(
      'testenv: cannot start the sandbox node: it needs root (containers, cgroups, mounts)',
    );
    expect(existsSync(dir)).toBe(false);
    await rm(dirname(dir), { recursive: true, force: true });
  });

  it('comes up without a node when not root, saying why in one line (up, status, down)', async () => {
    const parent = await tempDir('ct-node-nonroot-up-');
    await chmod(parent, 0o777);
    // The built servers, as hard links in a cache the unprivileged user may
    // lock (a copy where links cannot cross file systems).
    const cache = join(parent, 'cache');
    try {
      execFileSync('cp', ['-al', cacheRoot(), cache]);
    } catch {
      execFileSync('cp', ['-a', cacheRoot(), cache]);
    }
    for (const e of readdirSync(cache)) {
      if (e.endsWith('.lock')) await rm(join(cache, e), { recursive: true, force: true });
    }
    execFileSync('find', [cache, '-type', 'd', '-exec', 'chown', '65534:65534', '{}', '+']);
    const dir = join(parent, 'sandbox');
    const asNobody = (args: string[]) =>
      run('setpriv', [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        'env',
        `HOME=${parent}`,
        `CLOUDTASER_TESTENV_CACHE=${cache}`,
        `CLOUDTASER_SANDBOX_DIR=${dir}`,
        `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`,
        process.execPath,
        '--import',
        'tsx',
        join(projectRoot, 'testenv', 'cli.ts'),
        ...args,
      ]);
    try {
      const up = await asNobody(['up']);
      expect(up.code, up.out).toBe(0);
      // One line says why, and the control plane is up all the same.
      expect(up.out.split('\n').filter((l) => l.includes('cannot start'))).toEqual([
        'testenv: cannot start the sandbox node: it needs root (containers, cgroups, mounts) (the sandbox runs without a node)',
      ]);
      expect(up.out).toContain('Node:       none (see above)');
      const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as {
        node?: unknown;
        nodeUnavailable?: string;
      };
      expect(state.node).toBeUndefined();
      expect(state.nodeUnavailable).toBe(
        'testenv: cannot start the sandbox node: it needs root (containers, cgroups, mounts)',
      );
      const status = await asNobody(['status']);
      expect(status.code, status.out).toBe(0);
      expect(status.out.trim()).toMatch(/^up \(.*, no node \(this machine cannot run one\)\)$/);
      const down = await asNobody(['down']);
      expect(down.code, down.out).toBe(0);
      expect(existsSync(dir)).toBe(false);
    } finally {
      await asNobody(['down']).catch(() => undefined);
      await rm(parent, { recursive: true, force: true });
    }
  }, 300_000);
});
