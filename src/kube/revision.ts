// The pods of the revision a workload is rolling out to: the new
// ReplicaSet's for a Deployment (label pod-template-hash), the update
// revision's for a StatefulSet and the newest ControllerRevision's for a
// DaemonSet (label controller-revision-hash).
import { AppsV1Api, CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import type { KubeTarget } from './config.js';
import { kubeError } from './errors.js';
import type { LiveWorkload } from './workloads.js';

export const REVISION_LABEL = 'controller-revision-hash';
const POD_TEMPLATE_HASH = 'pod-template-hash';
const DEPLOYMENT_REVISION = 'deployment.kubernetes.io/revision';

const selectorOf = (w: LiveWorkload): string =>
  Object.entries(w.spec?.selector.matchLabels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

const ownedBy = (
  o: { metadata?: { ownerReferences?: { uid: string }[] } },
  w: LiveWorkload,
): boolean => o.metadata?.ownerReferences?.some((r) => r.uid === w.metadata?.uid) === true;

export class RevisionPods {
  private readonly core: CoreV1Api;
  private readonly apps: AppsV1Api;

  constructor(private readonly kube: KubeTarget) {
    this.core = kube.api(CoreV1Api);
    this.apps = kube.api(AppsV1Api);
  }

  /** The hash label the DaemonSet's current pods carry: its newest ControllerRevision's. */
  async daemonSetRevision(w: LiveWorkload): Promise<string | undefined> {
    const namespace = w.metadata?.namespace ?? '';
    let revisions;
    try {
      // By owner, not by label: the revisions' labels are the controller's business.
      revisions = await this.apps.listNamespacedControllerRevision({ namespace });
    } catch (e) {
      throw kubeError(
        e,
        { verb: 'list', resource: 'controllerrevisions.apps', namespace },
        this.kube.server,
      );
    }
    const newest = revisions.items
      .filter((r) => ownedBy(r, w))
      .sort((a, b) => b.revision - a.revision)[0];
    return newest?.metadata?.labels?.[REVISION_LABEL];
  }

  /** The Deployment's current ReplicaSet's pod-template-hash (the one carrying its revision number). */
  private async deploymentHash(w: LiveWorkload): Promise<string | undefined> {
    const revision = w.metadata?.annotations?.[DEPLOYMENT_REVISION];
    if (!revision) return undefined;
    const namespace = w.metadata?.namespace ?? '';
    let sets;
    try {
      sets = await this.apps.listNamespacedReplicaSet({ namespace, labelSelector: selectorOf(w) });
    } catch (e) {
      throw kubeError(
        e,
        { verb: 'list', resource: 'replicasets.apps', namespace },
        this.kube.server,
      );
    }
    const current = sets.items.find(
      (rs) => ownedBy(rs, w) && rs.metadata?.annotations?.[DEPLOYMENT_REVISION] === revision,
    );
    return current?.metadata?.labels?.[POD_TEMPLATE_HASH];
  }

  /**
   * The pods of the revision being rolled out, or undefined while the
   * controller has not published that revision yet.
   */
  async of(w: LiveWorkload): Promise<V1Pod[] | undefined> {
    let label: string;
    let hash: string | undefined;
    if (w.kind === 'Deployment') {
      label = POD_TEMPLATE_HASH;
      hash = await this.deploymentHash(w);
    } else if (w.kind === 'StatefulSet') {
      label = REVISION_LABEL;
      hash = (w.status as { updateRevision?: string } | undefined)?.updateRevision;
    } else {
      label = REVISION_LABEL;
      hash = await this.daemonSetRevision(w);
    }
    if (!hash) return undefined;
    const namespace = w.metadata?.namespace ?? '';
    const selector = [selectorOf(w), `${label}=${hash}`].filter(Boolean).join(',');
    try {
      const list = await this.core.listNamespacedPod({ namespace, labelSelector: selector });
      // A ReplicaSet's pods are owned by it, not the Deployment; the hash
      // label under the workload's selector is enough to tell them apart.
      return w.kind === 'Deployment' ? list.items : list.items.filter((p) => ownedBy(p, w));
    } catch (e) {
      throw kubeError(e, { verb: 'list', resource: 'pods', namespace }, this.kube.server);
    }
  }
}
