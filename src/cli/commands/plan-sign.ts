// `plan sign`, `plan verify`, `plan signed-content`, and the
// `--require-signature` option the commands that act on a plan share.
import type { Command, OptionValues } from '@commander-js/extra-typings';
import { resolve } from 'node:path';
import { say, type Context } from '../../core/context.js';
import { readPlan } from '../../plan/load.js';
import type { LoadedPlan } from '../../plan/read.js';

export function registerPlanSigning(plan: Command, ctx: Context): void {
  plan
    .command('sign')
    .description(
      'sign what reviewers approve in a plan (everything but workload status) with an SSH key; writes PLAN.sig',
    )
    .argument('<file>', 'plan file')
    .requiredOption('--key <file>', 'unencrypted SSH private key (ed25519, RSA or ECDSA)')
    .option('-o, --output <file>', 'where to write the signature (default: <file>.sig)')
    .action(async (file, o) => {
      const { signPlan, signatureFileOf } = await import('../../plan/sign/run.js');
      const loaded = await readPlan(resolve(ctx.cwd, file), file);
      const output = o.output ?? signatureFileOf(file);
      await signPlan(
        loaded,
        {
          display: file,
          keyFile: resolve(ctx.cwd, o.key),
          keyDisplay: o.key,
          output: resolve(ctx.cwd, output),
          outputDisplay: output,
        },
        ctx,
      );
    });
  plan
    .command('verify')
    .description(
      "check a plan's signature (PLAN.sig) against an allowed_signers file; exit 2 naming what changed since it was signed",
    )
    .argument('<file>', 'plan file')
    .requiredOption('--allowed-signers <file>', "allowed signers, in ssh-keygen's format")
    .option('--signature <file>', 'the signature (default: <file>.sig)')
    .action(async (file, o) => {
      const { signatureFileOf, verifyPlanSignature } = await import('../../plan/sign/run.js');
      const loaded = await readPlan(resolve(ctx.cwd, file), file);
      const signature = o.signature ?? signatureFileOf(file);
      const v = await verifyPlanSignature(
        loaded,
        {
          display: file,
          allowedSigners: resolve(ctx.cwd, o.allowedSigners),
          allowedDisplay: o.allowedSigners,
          signature: resolve(ctx.cwd, signature),
          signatureDisplay: signature,
        },
        ctx,
      );
      say(
        ctx.stdout,
        `${file}: good signature by ${v.principals.join(', ')} (${v.key}); workload status is not covered`,
      );
    });
  plan
    .command('signed-content')
    .description(
      'print the exact bytes a plan signature covers (to sign or verify with ssh-keygen -Y … -n cloudtaser-plan)',
    )
    .argument('<file>', 'plan file')
    .action(async (file) => {
      const { signedContent } = await import('../../plan/sign/content.js');
      const loaded = await readPlan(resolve(ctx.cwd, file), file);
      ctx.stdout.write(signedContent(loaded.plan));
    });
}

/** Adds `--require-signature FILE` to a command that acts on a plan. */
export function withRequireSignature<
  Args extends unknown[],
  Opts extends OptionValues,
  GlobalOpts extends OptionValues,
>(c: Command<Args, Opts, GlobalOpts>) {
  return c.option(
    '--require-signature <allowed-signers>',
    'refuse a plan without a valid signature (PLAN.sig) by a key this allowed_signers file lists',
  );
}

/** The check behind --require-signature; nothing when the option is not given. */
export async function checkSignature(
  loaded: LoadedPlan,
  display: string,
  allowedSigners: string | undefined,
  ctx: Context,
): Promise<void> {
  if (allowedSigners === undefined) return;
  const { requireSignature } = await import('../../plan/sign/run.js');
  await requireSignature(
    loaded,
    resolve(ctx.cwd, display),
    display,
    resolve(ctx.cwd, allowedSigners),
    allowedSigners,
    ctx,
  );
}
