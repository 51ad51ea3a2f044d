import type { Command } from '@commander-js/extra-typings';
import type { Context } from '../../core/context.js';
import { registerSourceRegister, registerTargetFingerprint } from './cluster.js';
import { registerPlanCommands } from './plan.js';
import { registerSourceCommands } from './source.js';
import { registerTargetDiscover } from './target-discover.js';
import { registerTargetProtect } from './target-protect.js';
import { registerTargetReports } from './target-report.js';
import { registerTargetInstall } from './target-install.js';
import { registerTargetImport } from './target-import.js';
import { registerTargetCleanup } from './target-cleanup.js';
import { registerTargetVerifyPod } from './target-verify.js';
import { registerWebhookCommands } from './webhook.js';

/**
 * Registers every command under its noun: `target` talks to the Kubernetes
 * cluster, `source` to the OpenBao/Vault server, `plan` to plan files alone.
 */
export function registerCommands(program: Command, ctx: Context): void {
  const target = program
    .command('target')
    .description('commands that talk to the Kubernetes cluster (kubeconfig)');
  registerTargetDiscover(target, ctx);
  registerTargetImport(target, ctx);
  registerTargetProtect(target, ctx);
  registerTargetCleanup(target, ctx);
  registerTargetReports(target, ctx);
  registerTargetVerifyPod(target, ctx);
  registerTargetInstall(target, ctx);
  registerTargetFingerprint(target, ctx);
  const source = program
    .command('source')
    .description('commands that talk to the OpenBao/Vault server');
  registerSourceCommands(source, ctx);
  registerSourceRegister(source, ctx);
  const plan = program.command('plan').description('work with MigrationPlan files');
  registerPlanCommands(plan, ctx);
  const webhook = program
    .command('webhook')
    .description('the admission webhook that makes the annotations take effect');
  registerWebhookCommands(webhook, ctx);
}
