// The one shape every `target import --from` source has: given the plan's
// (namespace, Secret) for a vault path, the source names the secret that
// holds its values, and reads that secret's fields. Kubernetes names it
// `namespace/secret`; the cloud secret managers by a name template or a
// per-path mapping file.
import type { MigrationPlan } from '../../plan/schema.js';
import type { FieldOrigin, SourceNaming, SourceSecret, WantedPath } from '../plan.js';

export interface ImportSource {
  /** For the header line: `Kubernetes (context kind-dev)`, `AWS Secrets Manager (eu-west-1)`. */
  readonly description: string;
  /** The source's name for the secret a plan field comes from; also the key values are looked up by. */
  readonly nameOf: SourceNaming;
  /**
   * Reads one secret: its fields as bytes, or why it cannot be had (reported
   * for each path that needs it). Throws only when the run cannot go on at
   * all (source unreachable, credentials refused). Never puts a value into a
   * message.
   */
  read(name: string, origin: FieldOrigin): Promise<SourceSecret>;
  /**
   * A source that reads many secrets at once (SOPS: one decryption per file
   * for all its documents) reads them here instead of one `read` each.
   */
  readAll?(origins: readonly [string, FieldOrigin][]): Promise<Map<string, SourceSecret>>;
  /** A source whose plan sources are not Secrets (SOPS files) finds the paths it fills itself. */
  wanted?(plan: MigrationPlan): WantedPath[];
  close(): void;
}

/** Writes one `debug:` line (name, outcome, time; never a value) when --debug is on. */
export type DebugLine = ((line: string) => void) | undefined;
