// `webhook unregister`: removes the webhook's registration with the API
// server — the MutatingWebhookConfiguration first, then the guard policy
// (so no moment exists in which the guard refuses pods the webhook would
// still have injected). The Helm chart runs it as a pre-delete hook, so
// `helm uninstall` takes the webhook out of the admission path before its
// pods go away.
import { AdmissionregistrationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { kubeError, statusOf } from '../kube/errors.js';

export interface UnregisterTargets {
  webhookConfiguration: string;
  guard: string;
}

/** Deletes each object; one line per object (`deleted` or `already gone`). */
export async function unregisterWebhook(kc: KubeConfig, t: UnregisterTargets): Promise<string[]> {
  const api = kc.makeApiClient(AdmissionregistrationV1Api);
  const server = kc.getCurrentCluster()?.server ?? 'the API server';
  const lines: string[] = [];
  const remove = async (
    resource: string,
    name: string,
    call: () => Promise<unknown>,
  ): Promise<void> => {
    try {
      await call();
      lines.push(`${resource}/${name} deleted`);
    } catch (e) {
      if (statusOf(e) === 404) lines.push(`${resource}/${name} already gone`);
      else throw kubeError(e, { verb: 'delete', resource, name }, server);
    }
  };
  const hook = t.webhookConfiguration;
  await remove('mutatingwebhookconfigurations.admissionregistration.k8s.io', hook, () =>
    api.deleteMutatingWebhookConfiguration({ name: hook }),
  );
  await remove('validatingadmissionpolicybindings.admissionregistration.k8s.io', t.guard, () =>
    api.deleteValidatingAdmissionPolicyBinding({ name: t.guard }),
  );
  await remove('validatingadmissionpolicies.admissionregistration.k8s.io', t.guard, () =>
    api.deleteValidatingAdmissionPolicy({ name: t.guard }),
  );
  return lines;
}
