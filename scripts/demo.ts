// `npm run demo`: the guide's Complete Example on the local sandbox, with the
// real CLI, kubectl and bao. Each command is printed before its output.
// Pass --keep to leave the sandbox running afterwards.
import { spawn } from 'node:child_process';
import { mkdtemp, open, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { personalSandboxDir, projectRoot } from '../testenv/paths.js';
import { loopbackPki } from '../testenv/pki.js';
import { downCommand, startSandbox, type SandboxInfo } from '../testenv/sandbox.js';
import { prepareSandboxChart } from '../testenv/helm.js';
import { waitForWebhook } from '../testenv/webhook-probe.js';
import { INJECT_MATCH_EXPRESSION } from '../src/webhook/install.js';

const keep = process.argv.includes('--keep');
const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);

async function main(): Promise<number> {
  const sb = await startSandbox({
    // With the real node when this machine can run one (one line says why not).
    node: 'auto',
    log: (l) => {
      console.error(l);
    },
    // A kept sandbox lives where `npm run sandbox -- down` finds it. The demo
    // needs a fresh cluster, so it never borrows one already up there: it
    // says which one is up and how to stop it.
    ...(keep ? { dir: personalSandboxDir(), ownerPid: null, ifUp: 'refuse' as const } : {}),
  });
  const work = await mkdtemp(join(tmpdir(), 'cloudtaser-demo-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    KUBECONFIG: sb.info.kubeconfig,
    BAO_ADDR: sb.info.baoAddr,
    BAO_TOKEN: sb.info.baoToken,
    PATH: `${join(sb.info.binaries.kubectl, '..')}:${join(sb.info.binaries.bao, '..')}:${process.env.PATH ?? ''}`,
  };
  const cli = join(projectRoot, 'dist', 'bin', 'cloudtaser.js');

  /**
   * Runs a command as a person would type it, echoing it first. `shown` is
   * what is printed: secrets appear there as "$BAO_TOKEN", never as values.
   */
  const sh = (
    shown: string,
    cmd: string,
    args: string[],
    input?: string,
    cmdEnv: NodeJS.ProcessEnv = env,
  ): Promise<number> => {
    console.log(`\n${bold(`$ ${shown}`)}`);
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, {
        cwd: work,
        env: cmdEnv,
        stdio: [input === undefined ? 'ignore' : 'pipe', 'inherit', 'inherit'],
      });
      child.on('error', reject);
      child.on('close', (code) => {
        resolve(code ?? 1);
      });
      if (input !== undefined) child.stdin?.end(input);
    });
  };
  const step = async (code: Promise<number>, allowed: number[] = [0]): Promise<void> => {
    const c = await code;
    if (!allowed.includes(c)) throw new Error(`the step above exited ${c}`);
  };
  const kubectl = (args: string[]): Promise<number> =>
    sh(`kubectl ${args.join(' ')}`, 'kubectl', args);
  const bao = (args: string[]): Promise<number> => sh(`bao ${args.join(' ')}`, 'bao', args);
  const cloudtaser = (args: string[], input?: string): Promise<number> =>
    sh(
      `cloudtaser ${args.map((a) => (a === sb.info.baoToken ? '"$BAO_TOKEN"' : a === sb.info.baoAddr ? '"$BAO_ADDR"' : a)).join(' ')}`,
      process.execPath,
      [cli, ...args],
      input,
    );
  let stopWebhook = (): void => undefined;
  const heading = (text: string): void => {
    console.log(bold(`\n# ${text}`));
  };
  const addr = sb.info.baoAddr;
  const token = sb.info.baoToken;

  try {
    heading('0. A cluster whose workloads read native Kubernetes Secrets');
    console.log(`(local sandbox: API server ${sb.info.apiServer}, OpenBao ${addr} as $BAO_ADDR)`);
    const node = sb.info.node;
    if (!node) {
      console.log(
        `(no node: ${sb.info.nodeUnavailable ?? 'started without one'}; pods stay Pending and step 7b runs the wrapper on this host)`,
      );
    }
    // The example's two placeholders: the node's app image and OpenBao's CA.
    const ca = (await readFile(sb.info.baoCaFile, 'utf8')).trim().split('\n').join('\n    ');
    await writeFile(
      join(work, 'workloads.yaml'),
      (await readFile(join(projectRoot, 'examples', 'sandbox', 'workloads.yaml'), 'utf8'))
        .replaceAll('<sandbox-app-image>', node?.images.busybox ?? 'busybox:1.36')
        .replaceAll('<sandbox-vault-ca>', ca),
    );
    console.log('(examples/sandbox/workloads.yaml with the sandbox image and CA filled in)');
    await step(kubectl(['apply', '-f', 'workloads.yaml']));
    if (node) {
      await step(kubectl(['rollout', 'status', 'deployment/payment-api', '-n', 'payments']));
      await step(kubectl(['rollout', 'status', 'deployment/order-router', '-n', 'trading']));
    }
    await step(kubectl(['get', 'deployments', '-A']));

    if (node) {
      // The webhook as a cluster runs it: installed with the Helm chart, its
      // image built here and pulled from the sandbox registry by the node.
      heading('0b. Install the cloudtaser admission webhook with Helm');
      const chart = await prepareSandboxChart(sb.info, {
        namespace: 'cloudtaser-system',
        dir: work,
        log: (l) => {
          console.error(l);
        },
      });
      console.log(
        `(image ${chart.image}; ${join(work, 'cloudtaser-values.json')} sets the sandbox's loopback routing: sandbox.loopback=true)`,
      );
      await step(
        sh(
          'helm install cloudtaser charts/cloudtaser -n cloudtaser-system --create-namespace -f cloudtaser-values.json --wait --timeout 5m',
          chart.helm,
          chart.installArgs,
          undefined,
          chart.env,
        ),
      );
      await step(kubectl(['get', 'pods', '-n', 'cloudtaser-system', '-o', 'wide']));
      await step(kubectl(['get', 'mutatingwebhookconfiguration', 'cloudtaser']));
    } else {
      heading(
        '0b. Run the cloudtaser admission webhook (on loopback: this sandbox has no node for its pod)',
      );
      const pki = await loopbackPki(work);
      // The webhook's own log lines go to a file, so they do not interleave
      // with the commands' output the demo is showing.
      const webhookLog = await open(join(work, 'webhook.log'), 'a');
      const webhook = spawn(
        process.execPath,
        [
          cli,
          'webhook',
          'serve',
          '--tls-cert',
          pki.certFile,
          '--tls-key',
          pki.keyFile,
          '--host',
          '127.0.0.1',
          '--port',
          '0',
          '--auth-mount-path',
          `auth/${sb.info.baoKubeAuthPath}`,
          ...(sb.info.registry ? ['--insecure-registry', sb.info.registry] : []),
        ],
        { cwd: work, env, stdio: ['ignore', 'pipe', webhookLog.fd] },
      );
      await webhookLog.close();
      stopWebhook = () => webhook.kill('SIGTERM');
      const port = await new Promise<string>((resolve, reject) => {
        let seen = '';
        webhook.stdout?.on('data', (b: Buffer) => {
          seen += b.toString();
          const m = /listening on https:\/\/127\.0\.0\.1:(\d+)\//.exec(seen);
          if (m?.[1]) resolve(m[1]);
        });
        webhook.on('exit', () => {
          reject(new Error('the webhook exited'));
        });
      });
      console.log(
        `$ cloudtaser webhook serve --tls-cert tls.crt --tls-key tls.key --host 127.0.0.1 --port 0 --auth-mount-path auth/${sb.info.baoKubeAuthPath}${sb.info.registry ? ` --insecure-registry ${sb.info.registry}` : ''} &`,
      );
      console.log(`cloudtaser webhook listening on https://127.0.0.1:${port}/mutate`);
      console.log(`(its log: ${join(work, 'webhook.log')})`);
      await writeFile(join(work, 'webhook.yaml'), webhookConfig(port, pki.ca));
      await step(kubectl(['apply', '-f', 'webhook.yaml']));
    }
    // The API server loads new webhook configurations asynchronously.
    await waitForWebhook(sandboxCore(sb.info), 'payments');

    heading('1. Discover');
    await step(cloudtaser(['target', 'discover', '-o', 'plan.yaml']));

    heading('2. Review and edit the plan');
    await step(sh('cat plan.yaml', 'cat', ['plan.yaml']));
    const planFile = join(work, 'plan.yaml');
    await writeFile(
      planFile,
      (await readFile(planFile, 'utf8')).replace(
        'tenants:\n',
        '# Reviewed by the security team: paths and mappings approved.\ntenants:\n',
      ),
    );
    console.log('(a reviewer added a comment to the plan; cloudtaser keeps it from here on)');
    await step(cloudtaser(['plan', 'validate', 'plan.yaml']));

    heading('3. Apply vault structure (dry run first)');
    await step(
      cloudtaser([
        'source',
        'apply-plan',
        'plan.yaml',
        '--openbao-addr',
        addr,
        '--token',
        token,
        '--dry-run',
      ]),
    );
    await step(
      cloudtaser(['source', 'apply-plan', 'plan.yaml', '--openbao-addr', addr, '--token', token]),
    );

    heading('4. Populate secrets from the Kubernetes Secrets the plan names');
    console.log(
      '(the manual alternative is one `bao kv put <path> field=value ...` per plan path; see the README)',
    );
    await step(
      cloudtaser(['target', 'import', '--plan', 'plan.yaml', '--from', 'kubernetes', '--dry-run']),
    );
    await step(cloudtaser(['target', 'import', '--plan', 'plan.yaml', '--from', 'kubernetes']));
    // Field names and versions only: the values stay in vault.
    await step(bao(['kv', 'metadata', 'get', 'secret/payments/db-credentials']));

    heading('5. Verify');
    await step(
      cloudtaser(['source', 'verify-plan', 'plan.yaml', '--openbao-addr', addr, '--token', token]),
    );

    heading('6. Migrate interactively (answers: y, y for each workload)');
    console.log(
      `(pods reach OpenBao over TLS, ${sb.info.baoTlsAddr}: protect refuses plain http unless --allow-insecure-vault)`,
    );
    await step(
      cloudtaser(
        [
          'target',
          'protect',
          '--plan',
          'plan.yaml',
          '--vault-address',
          sb.info.baoTlsAddr,
          '--interactive',
        ],
        'y\ny\ny\ny\n',
      ),
    );

    heading('7. Confirm');
    if (node) {
      // protect restarted the workloads; the new pods come up through the webhook.
      await step(kubectl(['rollout', 'status', 'deployment/payment-api', '-n', 'payments']));
      await step(kubectl(['rollout', 'status', 'deployment/order-router', '-n', 'trading']));
    }
    await step(cloudtaser(['target', 'status', '--plan', 'plan.yaml']));
    await step(cloudtaser(['target', 'validate', '--vault-address', addr]));
    await step(cloudtaser(['target', 'audit', '--vault-address', addr]));
    await step(
      kubectl([
        'get',
        'pod',
        '-l',
        'app=payment-api',
        '-n',
        'payments',
        '-o',
        'jsonpath={range .items[*]}{.metadata.name}{": "}{.spec.initContainers[*].name}{"\\n"}{end}',
      ]),
    );
    if (node) {
      await confirmInPod(sh, step, node.images.busybox);
    } else {
      console.log(
        '(pods from before the rollout have no init container; the new ones have cloudtaser-init)',
      );
      heading(
        '7b. The app starts through the wrapper; its secret stays out of /proc/<pid>/environ',
      );
      console.log(
        '(no node in this sandbox, so the wrapper runs here as the pod would run it: with the',
      );
      console.log(
        " pod's injected environment and a service-account token bound to that pod, for vault's",
      );
      console.log(
        ' audience as the projected volume holds it; the sandbox CA stands in for the image trust store)',
      );
      await showWrapper(sb.info, work, env);
    }
    await step(
      sh('grep -c "status: migrated" plan.yaml', 'grep', ['-c', 'status: migrated', 'plan.yaml']),
    );

    heading('8. Finish: delete the native Secrets vault now holds (dry run first)');
    await step(cloudtaser(['target', 'cleanup', '--plan', 'plan.yaml']));
    await step(cloudtaser(['target', 'cleanup', '--plan', 'plan.yaml', '--yes']));
    await step(kubectl(['get', 'secrets', '-n', 'payments']));
    await step(kubectl(['get', 'secrets', '-n', 'trading']));
    // The audit ends the migration: no native Secret holds a migrated value.
    await step(cloudtaser(['target', 'audit', '--vault-address', addr]));

    console.log(`\n${bold('demo finished')}: the plan is in ${work}/plan.yaml`);
    if (keep) {
      console.log(
        `sandbox kept: source ${sb.info.envFile}; stop it with: ${downCommand(sb.info.dir)}`,
      );
    }
    return 0;
  } finally {
    stopWebhook();
    if (!keep) await sb.stop();
  }
}

function webhookConfig(port: string, ca: string): string {
  return `apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: cloudtaser
webhooks:
  - name: inject.cloudtaser.io
    admissionReviewVersions: [v1]
    sideEffects: None
    failurePolicy: Fail
    reinvocationPolicy: IfNeeded
    timeoutSeconds: 10
    clientConfig:
      url: https://127.0.0.1:${port}/mutate
      caBundle: ${Buffer.from(ca).toString('base64')}
    rules:
      - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}
    namespaceSelector:
      matchExpressions:
        - {key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system, kube-public, kube-node-lease]}
    matchConditions:
      - name: annotated
        expression: ${JSON.stringify(INJECT_MATCH_EXPRESSION)}
`;
}

function sandboxCore(info: SandboxInfo): CoreV1Api {
  const kc = new KubeConfig();
  kc.loadFromFile(info.kubeconfig);
  return kc.makeApiClient(CoreV1Api);
}

type Sh = (shown: string, cmd: string, args: string[], input?: string) => Promise<number>;
type Step = (code: Promise<number>, allowed?: number[]) => Promise<void>;

/**
 * Step 7 on the node, as the guide writes it, then the checks that mean
 * something: the guide's `cat /proc/1/environ` is refused inside the pod
 * (the wrapper, PID 1, is not dumpable), so its empty output proves nothing
 * by itself; `target verify-pod` reads PID 1's variable names with the
 * capability that takes, and the app's own log shows it got the values.
 */
async function confirmInPod(sh: Sh, step: Step, image: string): Promise<void> {
  const guide =
    "kubectl exec deploy/payment-api -n payments -- cat /proc/1/environ | tr '\\0' '\\n' | grep DB_PASS";
  // grep finds nothing (exit 1): the pipeline's status is grep's.
  await step(sh(guide, 'sh', ['-c', guide]), [1]);
  console.log(
    '(no output, and cat\'s "Permission denied" above says why: the wrapper, PID 1, is not dumpable, so no',
  );
  console.log(
    ' process in the container can read its environment. The next command reads it with CAP_SYS_PTRACE.)',
  );
  await step(
    sh(
      `cloudtaser target verify-pod deploy/payment-api -n payments --image ${image}`,
      process.execPath,
      [
        join(projectRoot, 'dist', 'bin', 'cloudtaser.js'),
        'target',
        'verify-pod',
        'deploy/payment-api',
        '-n',
        'payments',
        '--image',
        image,
      ],
    ),
  );
  // The app itself got the values: it logs their lengths at start.
  await step(
    sh('kubectl logs deploy/payment-api -n payments -c api', 'kubectl', [
      'logs',
      'deploy/payment-api',
      '-n',
      'payments',
      '-c',
      'api',
    ]),
  );
}

/** Runs the wrapper with a protected pod's injected env and a pod-bound token. */
async function showWrapper(info: SandboxInfo, work: string, env: NodeJS.ProcessEnv): Promise<void> {
  const core = sandboxCore(info);
  const pods = await core.listNamespacedPod({
    namespace: 'payments',
    labelSelector: 'app=payment-api',
  });
  const pod = pods.items.find((p) =>
    p.spec?.initContainers?.some((c) => c.name === 'cloudtaser-init'),
  );
  if (!pod) throw new Error('no injected payment-api pod found');
  const tr = await core.createNamespacedServiceAccountToken({
    name: pod.spec?.serviceAccountName ?? 'default',
    namespace: 'payments',
    body: {
      spec: {
        // What the kubelet writes into the webhook's projected volume.
        audiences: ['cloudtaser'],
        expirationSeconds: 600,
        boundObjectRef: {
          apiVersion: 'v1',
          kind: 'Pod',
          name: pod.metadata?.name ?? '',
          uid: pod.metadata?.uid ?? '',
        },
      },
    },
  });
  const tokenFile = join(work, 'pod-token');
  await writeFile(tokenFile, tr.status?.token ?? '', { mode: 0o600 });
  const podEnv = Object.fromEntries(
    (pod.spec?.containers[0]?.env ?? []).map((e) => [e.name, e.value ?? '']),
  );
  const wrapper = join(projectRoot, 'dist', 'wrapper', 'cloudtaser-wrapper');
  console.log(
    `\n${bold(`$ cloudtaser-wrapper sh -c 'echo "app sees DB_USER=$DB_USER and a DB_PASS of \${#DB_PASS} characters"'`)}`,
  );
  // The app holds on until the environ has been read (its go-ahead is a
  // file), so the check reads a live wrapper rather than racing its exit.
  const release = join(work, 'release-app');
  const child = spawn(
    wrapper,
    [
      'sh',
      '-c',
      `echo "app sees DB_USER=$DB_USER and a DB_PASS of \${#DB_PASS} characters"; echo ready >&2; while [ ! -e ${release} ]; do sleep 0.05; done`,
    ],
    {
      env: {
        PATH: env.PATH ?? '',
        ...podEnv,
        CLOUDTASER_SA_TOKEN_FILE: tokenFile,
        VAULT_CACERT: info.baoCaFile,
        // The startup probe's marker, in the pod an in-memory volume.
        CLOUDTASER_STARTED_FILE: join(work, 'started'),
      },
      stdio: ['ignore', 'inherit', 'pipe'],
    },
  );
  let err = '';
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
      if (err.includes('ready\n')) resolve();
    });
    child.on('exit', () => {
      reject(new Error(`the wrapper exited before the app started: ${err.trim()}`));
    });
  });
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code) => {
      resolve(code);
    }),
  );
  await ready;
  process.stderr.write(err.replace('ready\n', ''));
  child.stderr.on('data', (b: Buffer) => process.stderr.write(b));
  console.log(`\n${bold(`$ cat /proc/${child.pid ?? 0}/environ | tr '\\0' '\\n' | grep DB_PASS`)}`);
  // Read as root. A failed read must stop the demo, not print "no output".
  const environ = await readFile(`/proc/${child.pid ?? 0}/environ`, 'utf8');
  if (!environ.includes('PATH=')) {
    throw new Error(`/proc/${child.pid ?? 0}/environ is not the wrapper's environment`);
  }
  const hits = environ.split('\0').filter((l) => l.includes('DB_PASS'));
  console.log(
    hits.length === 0
      ? '(no output: the wrapper, PID 1 in the pod, never holds the value)'
      : hits.join('\n'),
  );
  await writeFile(release, '');
  if ((await exited) !== 0) throw new Error('the wrapper failed');
  if (hits.length > 0) throw new Error('DB_PASS found in the wrapper environment');
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`demo failed: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  },
);
