// External Secrets Operator's real controller against the test sandbox: built
// (once, cached) by testenv/eso.ts, its CRDs created in the sandbox's API
// server, the controller run as a host process and stopped by its pid. Only
// tests about ESO start it, so the sandbox every other test shares starts as
// fast as before.
import { join } from 'node:path';
import {
  ensureEso,
  installEsoCrds,
  startEsoController,
  type EsoController,
} from '../../testenv/eso.js';
import { freePort } from './net.js';
import { sandbox } from './sandbox.js';

/**
 * Builds (first run only) and starts the controller, watching every
 * namespace. The caller stops it (afterAll); a test process that dies
 * takes it down too, through the exit hook.
 */
export async function startEso(logDir: string): Promise<EsoController> {
  const info = sandbox();
  const bins = await ensureEso((line) => {
    process.stderr.write(`${line}\n`);
  });
  await installEsoCrds(info.binaries.kubectl, info.kubeconfig, bins.crds);
  const controller = await startEsoController({
    controller: bins.controller,
    kubeconfig: info.kubeconfig,
    metricsPort: await freePort(),
    logFile: join(logDir, 'external-secrets.log'),
  });
  const onExit = (): void => {
    try {
      process.kill(-controller.pid, 'SIGKILL');
    } catch {
      // Already stopped.
    }
  };
  process.once('exit', onExit);
  return {
    ...controller,
    async stop() {
      process.removeListener('exit', onExit);
      await controller.stop();
    },
  };
}
