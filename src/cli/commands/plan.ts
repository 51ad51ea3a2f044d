import type { Command } from '@commander-js/extra-typings';
import { say, type Context } from '../../core/context.js';
import { readPlan } from '../../plan/load.js';
import { resolve } from 'node:path';
import { registerPlanSigning } from './plan-sign.js';

export function registerPlanCommands(plan: Command, ctx: Context): void {
  plan
    .command('schema')
    .description('print the MigrationPlan JSON Schema')
    .action(async () => {
      // Imported here: zod and the schema are not needed by commands on a cached plan.
      const { planJsonSchema } = await import('../../plan/schema.js');
      ctx.stdout.write(`${JSON.stringify(planJsonSchema(), null, 2)}\n`);
    });
  plan
    .command('validate')
    .description('check a plan file; every problem is reported as FILE:LINE:COL')
    .argument('<file>', 'plan file')
    .action(async (file) => {
      const { plan: p } = await readPlan(resolve(ctx.cwd, file), file);
      const workloads = p.tenants.reduce((n, t) => n + t.workloads.length, 0);
      say(ctx.stdout, `${file}: valid (${p.tenants.length} tenant(s), ${workloads} workload(s))`);
    });
  registerPlanSigning(plan, ctx);
}
