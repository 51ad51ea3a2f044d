import type { Command } from '@commander-js/extra-typings';
import type { Context } from '../../core/context.js';

/**
 * Registers every command under its noun: `target` talks to the Kubernetes
 * cluster, `source` to the OpenBao/Vault server, `plan` to plan files alone.
 */
export function registerCommands(program: Command, _ctx: Context): void {
  program
    .command('target')
    .description('commands that talk to the Kubernetes cluster (kubeconfig)');
  program.command('source').description('commands that talk to the OpenBao/Vault server');
}
