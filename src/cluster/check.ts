// The check protect, status, validate and audit make before they act on a
// plan: is the current kubeconfig context's cluster the one the plan was
// made from? A staging plan run against production is refused.
import { say, type Context } from '../core/context.js';
import { ServerError, UserError } from '../core/errors.js';
import { loadKubeFor, type KubeOptions } from '../kube/config.js';
import type { MigrationPlan } from '../plan/schema.js';
import { judgeCluster } from './identity.js';
import { readClusterFacts } from './read.js';
import { MISMATCH_FLAG } from './mismatch.js';

/**
 * Throws a UserError (exit 2) naming both fingerprints when the clusters
 * differ, unless `mismatchOk` (then one warning line). A plan made before
 * plans recorded a fingerprint (or written by hand) is not checked: one note
 * says so, and `target discover` writes a plan that is.
 */
export async function checkPlanCluster(
  plan: MigrationPlan,
  display: string,
  kube: KubeOptions,
  mismatchOk: boolean,
  ctx: Context,
): Promise<void> {
  const recorded = plan.metadata.clusterFingerprint;
  if (recorded === undefined) {
    say(
      ctx.stderr,
      `Note: ${display} records no cluster fingerprint (metadata.clusterFingerprint); not checking that this is its cluster. Plans from \`target discover\` record one.`,
    );
    return;
  }
  const target = loadKubeFor(kube, ctx);
  let current: { fingerprint: string };
  try {
    current = await readClusterFacts(target);
  } catch (e) {
    // Told to go on whatever the cluster: one that cannot be identified too.
    // Otherwise refused: a user who may not read kube-system (a namespace-
    // scoped operator) could be pointed at the wrong cluster unnoticed.
    if (!mismatchOk) {
      if (!(e instanceof ServerError)) throw e;
      throw new ServerError(
        `cannot check that context "${target.context}" is the cluster ${display} was made from: ${e.message}`,
        `grant get on namespace kube-system and on configmap kube-system/kube-root-ca.crt, or pass ${MISMATCH_FLAG} to act without the check`,
      );
    }
    say(
      ctx.stderr,
      `Warning: could not identify the cluster of context "${target.context}" (${e instanceof Error ? e.message : String(e)}); going on (${MISMATCH_FLAG})`,
    );
    return;
  }
  const verdict = judgeCluster(recorded, current.fingerprint, mismatchOk);
  if (verdict.kind !== 'mismatch') return;
  const made = plan.metadata.cluster ? ` (${plan.metadata.cluster})` : '';
  const what = `${display} was made from cluster ${verdict.plan}${made}, but context "${target.context}" is cluster ${verdict.current} (${target.server})`;
  if (verdict.overridden) {
    say(ctx.stderr, `Warning: ${what}; going on (${MISMATCH_FLAG})`);
    return;
  }
  throw new UserError(
    what,
    `pick the plan's cluster (--context), or pass ${MISMATCH_FLAG} if the plan really is meant for this cluster`,
  );
}
