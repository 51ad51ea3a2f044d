// kubeconfig resolution exactly as kubectl does it: --kubeconfig, then
// KUBECONFIG (a colon-separated list, merged), then ~/.kube/config;
// --context picks a context. Errors name the file and the missing key.
import { KubeConfig } from '@kubernetes/client-node';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { UserError } from '../core/errors.js';

export interface KubeOptions {
  kubeconfig?: string | undefined;
  context?: string | undefined;
}

export interface KubeTarget {
  kc: KubeConfig;
  /** API server URL of the chosen context. */
  server: string;
  context: string;
}

function loadOne(kc: KubeConfig, file: string): void {
  if (!existsSync(file)) throw new UserError(`kubeconfig ${file}: no such file`);
  try {
    kc.loadFromFile(file);
  } catch (e) {
    const first = (e instanceof Error ? e.message : String(e)).split('\n')[0] ?? '';
    throw new UserError(`kubeconfig ${file} is not valid: ${first}`);
  }
}

/** Loads the kubeconfig a kubectl user would expect, and checks the context. */
export function loadKube(
  opts: KubeOptions,
  env: NodeJS.ProcessEnv,
  cwd: string,
  home: string = homedir(),
): KubeTarget {
  const abs = (f: string): string => (isAbsolute(f) ? f : resolve(cwd, f));
  const kc = new KubeConfig();
  if (opts.kubeconfig) {
    loadOne(kc, abs(opts.kubeconfig));
  } else if (env.KUBECONFIG) {
    const files = env.KUBECONFIG.split(delimiter)
      .filter(Boolean)
      .map(abs)
      .filter((f) => existsSync(f));
    if (files.length === 0) {
      throw new UserError(`KUBECONFIG=${env.KUBECONFIG}: none of its files exist`);
    }
    // Like kubectl: the first file that sets a value wins.
    const [first, ...rest] = files;
    loadOne(kc, first ?? '');
    for (const f of rest) {
      const more = new KubeConfig();
      loadOne(more, f);
      kc.mergeConfig(more, true);
    }
  } else {
    const file = join(home, '.kube', 'config');
    if (!existsSync(file)) {
      throw new UserError(
        'no kubeconfig found',
        'pass --kubeconfig FILE, set KUBECONFIG, or create ~/.kube/config',
      );
    }
    loadOne(kc, file);
  }

  if (opts.context) {
    if (!kc.getContextObject(opts.context)) {
      const known = kc.getContexts().map((c) => c.name);
      throw new UserError(
        `context "${opts.context}" not found in kubeconfig`,
        known.length > 0 ? `known contexts: ${known.join(', ')}` : 'the kubeconfig has no contexts',
      );
    }
    kc.setCurrentContext(opts.context);
  }
  const context = kc.getCurrentContext();
  if (!context) {
    throw new UserError('kubeconfig has no current-context', 'pass --context NAME');
  }
  const ctxObj = kc.getContextObject(context);
  if (!ctxObj) throw new UserError(`kubeconfig: current-context "${context}" is not defined`);
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) {
    throw new UserError(
      `kubeconfig: context "${context}" names cluster "${ctxObj.cluster}", which has no server`,
    );
  }
  return { kc, server: cluster.server, context };
}
