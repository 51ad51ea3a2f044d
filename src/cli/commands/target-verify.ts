import { Option, type Command } from '@commander-js/extra-typings';
import type { Context } from '../../core/context.js';
import { UserError } from '../../core/errors.js';
import { positiveInt } from './target-protect.js';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function registerTargetVerifyPod(target: Command, ctx: Context): void {
  target
    .command('verify-pod')
    .description(
      "prove that a running pod's PID 1 holds none of its secret variables: reads the names (never the values) in /proc/1/environ from an ephemeral debug container; exits 1 when one is present",
    )
    .argument('<pod>', 'deploy/NAME, statefulset/NAME, daemonset/NAME or pod/NAME')
    .option(
      '-n, --namespace <namespace>',
      "the pod's namespace (default: the context's, then default)",
    )
    .option('-c, --container <name>', 'the app container (default: as kubectl picks it)')
    .option(
      '--image <image>',
      'debug container image: any with sh, cat, tr and cut (default: busybox:1.36)',
    )
    .option(
      '--env <name>',
      'another variable that must be absent (repeatable); the env-map annotation names the rest',
      (v: string, prev: string[]) => {
        if (!ENV_NAME.test(v)) throw new UserError(`--env wants a variable name, not "${v}"`);
        return [...prev, v];
      },
      [] as string[],
    )
    .addOption(
      new Option('--timeout <seconds>', 'limit for the debug container to start and finish')
        .default(120)
        .argParser(positiveInt('--timeout', 3600)),
    )
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context to use')
    .addOption(
      new Option('-o, --output <format>', 'output format')
        .choices(['table', 'json'])
        .default('table'),
    )
    .action(async (ref, o) => {
      const { runVerifyPod, DEFAULT_DEBUG_IMAGE } = await import('../../verify/run.js');
      await runVerifyPod(
        {
          ref,
          namespace: o.namespace,
          container: o.container,
          image: o.image ?? DEFAULT_DEBUG_IMAGE,
          env: o.env,
          timeoutMs: o.timeout * 1000,
          output: o.output,
          kube: { kubeconfig: o.kubeconfig, context: o.context },
        },
        ctx,
      );
    });
}
