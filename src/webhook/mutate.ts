// The admission decision, as a pure function of the Pod, the webhook's
// settings and the image commands already looked up. For a Pod annotated
// cloudtaser.io/inject: "true" it adds an in-memory volume, an init
// container that installs the wrapper into it, a projected service-account
// token for vault's audience, and rewrites every other container, init
// containers included, to start through the wrapper with the vault settings
// in its environment. Never a secret value: only paths, field names and a role.
import type {
  V1Container,
  V1EnvVar,
  V1Pod,
  V1PodSpec,
  V1Probe,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import { KV2_DATA_PATH } from '../plan/model.js';
import {
  ANNOTATION,
  MOUNT,
  formatFileMap,
  isPlainHttp,
  parseEnvMap,
  parseFileMap,
  type FileMapEntry,
  VAULT_TOKEN_AUDIENCE,
} from '../contract/annotations.js';

export const INIT_CONTAINER_NAME = 'cloudtaser-init';
export const VOLUME_NAME = 'cloudtaser-bin';
export const MOUNT_PATH = '/cloudtaser/bin';
export const WRAPPER_PATH = `${MOUNT_PATH}/cloudtaser-wrapper`;
/** Where the wrapper sits inside the init image. */
export const IMAGE_WRAPPER_PATH = '/cloudtaser-wrapper';
/**
 * The token the wrapper logs in with: projected for vault's audience, not the
 * pod's Kubernetes-API token (which vault could replay against the cluster).
 */
export const TOKEN_VOLUME_NAME = 'cloudtaser-token';
export const TOKEN_MOUNT_PATH = '/var/run/secrets/cloudtaser.io/serviceaccount';
export const TOKEN_PATH = `${TOKEN_MOUNT_PATH}/token`;
/** The shortest lifetime Kubernetes issues; the wrapper reads the token once, at start. */
export const TOKEN_EXPIRATION_SECONDS = 600;
/**
 * Where the wrapper notes that it started the app, one file per container:
 * the startup probe the webhook adds reads it, so a pod whose wrapper is
 * still logging in to vault (and whose app is not running) is not Ready.
 */
export const RUN_VOLUME_NAME = 'cloudtaser-run';
export const RUN_MOUNT_PATH = '/cloudtaser/run';
/**
 * Probe every second; give up only after five minutes. The wrapper's own
 * fail-closed limit (60 s of login and reads, then it exits and the kubelet
 * restarts it) ends a stuck start long before, so the probe never kills a
 * container the wrapper would still start.
 */
export const STARTUP_PROBE = {
  periodSeconds: 1,
  failureThreshold: 300,
  timeoutSeconds: 5,
} as const;

/** The startup probe of a wrapped container: the wrapper checks its own marker. */
export function startedProbe(container: string): V1Probe {
  return {
    exec: { command: [WRAPPER_PATH, '--started', `${RUN_MOUNT_PATH}/${container}`] },
    ...STARTUP_PROBE,
  };
}

export interface MutateConfig {
  initImage: string;
  /** Kubernetes auth mount the wrapper logs in at, e.g. auth/kubernetes. */
  authMountPath: string;
}

/** ENTRYPOINT and CMD from an image's config. */
export interface ImageCommand {
  entrypoint: string[];
  cmd: string[];
}

export type JsonPatchOp =
  { op: 'add' | 'replace'; path: string; value: unknown } | { op: 'remove'; path: string };

export type Decision =
  | { allowed: true; patch: JsonPatchOp[]; reason: string; warnings?: string[] }
  | { allowed: false; message: string };

/** Lists the Secret volumes the webhook left in place although the file-map names them. */
export const NATIVE_VOLUMES_ANNOTATION = 'cloudtaser.io/native-secret-volumes';
/** The size limit of a memory-backed volume that replaces a Secret volume (a Secret is at most 1 MiB). */
export const FILES_SIZE_LIMIT = '8Mi';

/** Environment variables the webhook sets, all removed by the wrapper before the app starts. */
export const INJECTED_ENV = [
  'VAULT_ADDR',
  'VAULT_AUTH_ROLE',
  'VAULT_AUTH_MOUNT_PATH',
  'CLOUDTASER_SECRET_PATHS',
  'CLOUDTASER_ENV_MAP',
  'CLOUDTASER_FILE_MAP',
  'CLOUDTASER_SA_TOKEN_FILE',
  'CLOUDTASER_ALLOW_INSECURE_VAULT',
  'CLOUDTASER_STARTED_FILE',
] as const;

export function wantsInjection(pod: V1Pod): boolean {
  return pod.metadata?.annotations?.[ANNOTATION.inject] === 'true';
}

/**
 * The containers the webhook wraps, init containers first. Init containers
 * are wrapped too: discover maps their Secret references into the plan, so
 * once the native Secret is gone they need the values from vault as much as
 * the app does (left alone, the pod would hang in Init).
 */
function wrappedContainers(
  pod: V1Pod,
): { c: V1Container; base: string; what: 'init container' | 'container' }[] {
  const spec = pod.spec;
  return [
    ...(spec?.initContainers ?? [])
      .map((c, i) => ({ c, base: `/spec/initContainers/${i}`, what: 'init container' as const }))
      .filter((x) => x.c.name !== INIT_CONTAINER_NAME),
    ...(spec?.containers ?? []).map((c, i) => ({
      c,
      base: `/spec/containers/${i}`,
      what: 'container' as const,
    })),
  ];
}

/** Containers whose command must come from their image's config. */
export function containersNeedingImageConfig(pod: V1Pod): V1Container[] {
  return wrappedContainers(pod)
    .map((x) => x.c)
    .filter((c) => !c.command || c.command.length === 0);
}

const escapePointer = (s: string): string => s.replace(/~/g, '~0').replace(/\//g, '~1');

interface Settings {
  address: string;
  /** `auth/<mount>` from the auth-path annotation; undefined: the webhook's default. */
  authMountPath: string | undefined;
  allowInsecure: boolean;
  role: string;
  paths: string[];
  envMap: string;
  envNames: Set<string>;
  files: FileMapEntry[];
}

function readSettings(pod: V1Pod): Settings | string {
  const a = pod.metadata?.annotations ?? {};
  const address = a[ANNOTATION.vaultAddress];
  if (!address || !/^https?:\/\/[^\s,]+$/.test(address)) {
    return `annotation ${ANNOTATION.vaultAddress} must be an http(s) URL`;
  }
  const allowInsecure = a[ANNOTATION.allowInsecureVault] === 'true';
  if (isPlainHttp(address) && !allowInsecure) {
    return `annotation ${ANNOTATION.vaultAddress} is plain http (${address}): the login token and the secrets would cross the network unencrypted; use https, or set ${ANNOTATION.allowInsecureVault}: "true" (target protect --allow-insecure-vault)`;
  }
  const role = a[ANNOTATION.vaultRole];
  if (!role || !/^[A-Za-z0-9_.-]+$/.test(role))
    return `annotation ${ANNOTATION.vaultRole} must name a vault role`;
  const authPath = a[ANNOTATION.vaultAuthPath];
  if (authPath !== undefined && !MOUNT.test(authPath)) {
    return `annotation ${ANNOTATION.vaultAuthPath} must be a vault mount path like kubernetes-prod (no leading "/" or "auth/")`;
  }
  const paths = (a[ANNOTATION.secretPaths] ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  if (paths.length === 0 || paths.some((p) => !KV2_DATA_PATH.test(p))) {
    return `annotation ${ANNOTATION.secretPaths} must list KV v2 data paths (<mount>/data/<path>, comma-separated)`;
  }
  const raw = a[ANNOTATION.envMap] ?? '';
  const entries = parseEnvMap(raw);
  const files = parseFileMap(a[ANNOTATION.fileMap] ?? '');
  if (!files) {
    return `annotation ${ANNOTATION.fileMap} must be <vault-path>:<field>=<file>;mount=<mount path>;mode=<octal>, comma-separated, each file an absolute, normalised path inside its mount and named once`;
  }
  if (!entries || (entries.length === 0 && files.length === 0)) {
    return `annotation ${ANNOTATION.envMap} must be <vault-path>:<field>=<ENV_VAR>, comma-separated`;
  }
  const unlisted = entries.filter((e) => !paths.includes(e.path));
  if (unlisted.length > 0) {
    return `annotation ${ANNOTATION.envMap} reads ${unlisted[0]?.path ?? ''}, which is not in ${ANNOTATION.secretPaths}`;
  }
  const unlistedFile = files.find((e) => !paths.includes(e.path));
  if (unlistedFile) {
    return `annotation ${ANNOTATION.fileMap} reads ${unlistedFile.path}, which is not in ${ANNOTATION.secretPaths}`;
  }
  const reserved = files.find((e) =>
    [MOUNT_PATH, TOKEN_MOUNT_PATH].some((r) => overlaps(e.file, r)),
  );
  if (reserved) {
    return `annotation ${ANNOTATION.fileMap}: file ${reserved.file} overlaps a volume cloudtaser mounts`;
  }
  return {
    address,
    authMountPath: authPath === undefined ? undefined : `auth/${authPath}`,
    allowInsecure,
    role,
    paths,
    envMap: raw,
    envNames: new Set(entries.map((e) => e.env)),
    files,
  };
}

const within = (path: string, dir: string): boolean => path === dir || path.startsWith(`${dir}/`);
const overlaps = (a: string, b: string): boolean => within(a, b) || within(b, a);

/** What the webhook does with the pod's Secret volumes that hold mapped files. */
interface FilePlan {
  /** Volume index → the memory-backed volume that replaces it. */
  replace: Map<number, V1Volume>;
  /** Names of the replaced volumes. */
  replaced: Set<string>;
  /** Secret volumes left in place, with why. */
  kept: { name: string; why: string }[];
}

/**
 * The files a Secret volume would show, relative to its root, when its
 * items say so; undefined when it shows every key of its Secret (key names
 * the webhook cannot see), or is not made of Secrets only.
 */
function volumeItems(v: V1Volume): string[] | undefined | 'not-secret' {
  if (v.secret) return v.secret.items?.map((i) => i.path);
  const sources = v.projected?.sources;
  if (!sources || sources.length === 0 || sources.some((s) => !s.secret)) return 'not-secret';
  const out: string[] = [];
  for (const s of sources) {
    if (!s.secret?.items) return undefined;
    out.push(...s.secret.items.map((i) => i.path));
  }
  return out;
}

/** True when the file-map gives the mounts of one volume different sets of files. */
function differentFiles(mounts: string[], files: FileMapEntry[]): boolean {
  const sets = [...new Set(mounts)].map((m) =>
    files
      .filter((f) => f.mount === m)
      .map((f) => f.file.slice(m.length))
      .sort()
      .join('\n'),
  );
  return sets.some((x) => x !== sets[0]);
}

/** The memory-backed volume that takes a Secret volume's place when its files come from vault. */
export function filesVolume(name: string): V1Volume {
  return { name, emptyDir: { medium: 'Memory', sizeLimit: FILES_SIZE_LIMIT } };
}

/**
 * True for the volume `target protect` leaves where a Secret volume was once
 * the plan serves all of its files: a memory emptyDir. The webhook fills it
 * as it fills a Secret volume it replaces itself.
 */
function isFilesVolume(v: V1Volume): boolean {
  return v.emptyDir?.medium === 'Memory' && !v.secret && !v.projected;
}

/**
 * The names of the pod spec's Secret volumes (or memory emptyDirs protect
 * put in their place) whose files the file-map serves in full: by the rule
 * of planFiles, which `target protect` shares so it swaps out exactly the
 * volumes the webhook would replace.
 */
export function servedVolumes(spec: V1PodSpec | undefined, files: FileMapEntry[]): Set<string> {
  const plan = planFiles({ spec: spec ?? { containers: [] } }, files);
  return typeof plan === 'string' ? new Set() : plan.replaced;
}

/**
 * Which Secret volumes become memory-backed emptyDirs. A volume is replaced
 * only when nothing it delivers today would go missing: every container
 * mounts it whole (a subPath mount of an emptyDir would be an empty
 * directory, not the file), and when its items list the files, each one is
 * in the file-map at that path. Otherwise it stays as it is, the wrapper
 * writes nothing into it (the native files are still there) and the pod
 * carries NATIVE_VOLUMES_ANNOTATION. A volume without items shows all of
 * its Secret's keys; the plan listed them when discover ran, so the
 * file-map is taken as the whole content.
 */
function planFiles(pod: V1Pod, files: FileMapEntry[]): FilePlan | string {
  const out: FilePlan = { replace: new Map(), replaced: new Set(), kept: [] };
  if (files.length === 0) return out;
  const volumes = pod.spec?.volumes ?? [];
  const all = wrappedContainers(pod);
  const mountsOf = (name: string): { c: V1Container; m: V1VolumeMount }[] =>
    all.flatMap(({ c }) =>
      (c.volumeMounts ?? []).filter((m) => m.name === name).map((m) => ({ c, m })),
    );
  for (const mount of [...new Set(files.map((f) => f.mount))]) {
    const holders = all.flatMap(({ c }) =>
      (c.volumeMounts ?? []).filter((m) => m.mountPath === mount),
    );
    if (holders.length === 0) {
      return `annotation ${ANNOTATION.fileMap} names mount ${mount}, which no container of the pod mounts`;
    }
  }
  volumes.forEach((v, index) => {
    const uses = mountsOf(v.name);
    const mapped = files.filter((f) => uses.some(({ m }) => m.mountPath === f.mount));
    if (mapped.length === 0) return;
    const protectedVolume = isFilesVolume(v);
    const items = protectedVolume ? undefined : volumeItems(v);
    let why: string | undefined;
    if (items === 'not-secret') why = 'it is not made of Secrets only';
    else if (uses.some(({ m }) => m.subPath || m.subPathExpr)) {
      why = 'a container mounts it with subPath, which an emptyDir cannot serve as a file';
    } else if (
      differentFiles(
        uses.map(({ m }) => m.mountPath),
        files,
      )
    ) {
      // Each mount shows the same files; one the file-map leaves short would
      // lose what the others get.
      why = 'its mounts do not all have the same files in the file-map';
    } else if (items) {
      for (const { m } of uses) {
        const missing = items.find((p) => !files.some((f) => f.file === `${m.mountPath}/${p}`));
        if (missing !== undefined) {
          why = `its file ${m.mountPath}/${missing} is not in ${ANNOTATION.fileMap}`;
          break;
        }
      }
    }
    if (why !== undefined) {
      out.kept.push({ name: v.name, why });
      return;
    }
    out.replaced.add(v.name);
    // Already memory-backed (protect swapped the Secret out): filled as is.
    if (!protectedVolume) out.replace.set(index, filesVolume(v.name));
  });
  // A file must not land where another volume is mounted inside its own:
  // the wrapper would write into that volume (or be hidden by it).
  for (const { c } of all) {
    for (const m of c.volumeMounts ?? []) {
      if (!out.replaced.has(m.name)) continue;
      for (const f of files.filter((x) => x.mount === m.mountPath)) {
        const other = (c.volumeMounts ?? []).find(
          (o) =>
            o !== m &&
            o.mountPath !== m.mountPath &&
            within(o.mountPath, m.mountPath) &&
            overlaps(f.file, o.mountPath),
        );
        if (other) {
          return `annotation ${ANNOTATION.fileMap}: file ${f.file} overlaps the mount ${other.mountPath} (volume ${other.name}) of container ${c.name}`;
        }
      }
    }
  }
  return out;
}

/** The argv a container would have run, by the Kubernetes rules for command/args vs ENTRYPOINT/CMD. */
export function effectiveArgv(
  c: V1Container,
  image: ImageCommand | undefined,
): string[] | undefined {
  if (c.command && c.command.length > 0) return [...c.command, ...(c.args ?? [])];
  if (!image) return undefined;
  const argv = [...image.entrypoint, ...(c.args ?? image.cmd)];
  return argv.length > 0 ? argv : undefined;
}

export function decide(
  pod: V1Pod,
  cfg: MutateConfig,
  images: ReadonlyMap<string, ImageCommand | string> = new Map(),
): Decision {
  if (!wantsInjection(pod)) return { allowed: true, patch: [], reason: 'not annotated' };
  const spec = pod.spec;
  if (!spec) return { allowed: false, message: 'pod has no spec' };
  // Reinvocation (reinvocationPolicy: IfNeeded) must not inject twice.
  if ((spec.initContainers ?? []).some((c) => c.name === INIT_CONTAINER_NAME)) {
    return { allowed: true, patch: [], reason: 'already injected' };
  }
  const settings = readSettings(pod);
  if (typeof settings === 'string') return { allowed: false, message: `cloudtaser: ${settings}` };

  const filePlan = planFiles(pod, settings.files);
  if (typeof filePlan === 'string') return { allowed: false, message: `cloudtaser: ${filePlan}` };

  const patch: JsonPatchOp[] = [];
  // Same name, so every container's mount of it stays where the app looks.
  for (const [index, v] of filePlan.replace) {
    patch.push({ op: 'replace', path: `/spec/volumes/${index}`, value: v });
  }
  const volumes: V1Volume[] = [
    { name: VOLUME_NAME, emptyDir: { medium: 'Memory', sizeLimit: '32Mi' } },
    {
      name: TOKEN_VOLUME_NAME,
      projected: {
        sources: [
          {
            serviceAccountToken: {
              audience: VAULT_TOKEN_AUDIENCE,
              expirationSeconds: TOKEN_EXPIRATION_SECONDS,
              path: 'token',
            },
          },
        ],
      },
    },
    { name: RUN_VOLUME_NAME, emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } },
  ];
  if (spec.volumes) {
    for (const v of volumes) patch.push({ op: 'add', path: '/spec/volumes/-', value: v });
  } else patch.push({ op: 'add', path: '/spec/volumes', value: volumes });

  const injected: V1EnvVar[] = [
    { name: 'VAULT_ADDR', value: settings.address },
    { name: 'VAULT_AUTH_ROLE', value: settings.role },
    { name: 'VAULT_AUTH_MOUNT_PATH', value: settings.authMountPath ?? cfg.authMountPath },
    { name: 'CLOUDTASER_SECRET_PATHS', value: settings.paths.join(',') },
    { name: 'CLOUDTASER_ENV_MAP', value: settings.envMap },
    { name: 'CLOUDTASER_SA_TOKEN_FILE', value: TOKEN_PATH },
    ...(settings.allowInsecure ? [{ name: 'CLOUDTASER_ALLOW_INSECURE_VAULT', value: 'true' }] : []),
  ];
  const mounts = [
    { name: VOLUME_NAME, mountPath: MOUNT_PATH, readOnly: true },
    { name: TOKEN_VOLUME_NAME, mountPath: TOKEN_MOUNT_PATH, readOnly: true },
  ];
  // Every container is rewritten before cloudtaser-init is inserted, so the
  // init containers' indices still name the pod's own init containers.
  for (const { c, base, what } of wrappedContainers(pod)) {
    // The files this container's wrapper writes: those in the mounts it has
    // of a replaced volume (another container's paths are not its to touch).
    const fileMounts = (c.volumeMounts ?? []).filter((m) => filePlan.replaced.has(m.name));
    const own = settings.files.filter((f) => fileMounts.some((m) => m.mountPath === f.mount));
    // With no env var mapped and no file of its own, the wrapper would have
    // nothing to fetch (and refuses to start that way): left as it is.
    if (settings.envNames.size === 0 && own.length === 0) continue;
    const image = images.get(c.image ?? '');
    if (typeof image === 'string' && (!c.command || c.command.length === 0)) {
      return {
        allowed: false,
        message: `cloudtaser: cannot find the command of ${what} ${c.name} (image ${c.image ?? '?'}): ${image}; set command in the pod spec`,
      };
    }
    const argv = effectiveArgv(c, typeof image === 'string' ? undefined : image);
    if (!argv) {
      return {
        allowed: false,
        message: `cloudtaser: ${what} ${c.name} has no command and its image ${c.image ?? '?'} declares none; set command in the pod spec`,
      };
    }
    patch.push({ op: 'add', path: `${base}/command`, value: [WRAPPER_PATH, ...argv] });
    if (c.args) patch.push({ op: 'remove', path: `${base}/args` });
    // Values that now come from vault must not also arrive from native
    // Secrets: the kubelet would put them in the wrapper's (PID 1's) environ.
    const kept = (c.env ?? []).filter(
      (e) =>
        !settings.envNames.has(e.name) && !(INJECTED_ENV as readonly string[]).includes(e.name),
    );
    // An app container gets a startup probe that passes once the wrapper
    // has started the app: while it still logs in to vault (fail-closed
    // retries) the pod is not Ready and takes no traffic. Init containers
    // cannot have probes; a container with its own startup probe keeps it
    // (it already waits for the app, which cannot run before the wrapper
    // starts it).
    const app = what === 'container';
    const started = app
      ? [{ name: 'CLOUDTASER_STARTED_FILE', value: `${RUN_MOUNT_PATH}/${c.name}` }]
      : [];
    const fileEnv =
      own.length > 0 ? [{ name: 'CLOUDTASER_FILE_MAP', value: formatFileMap(own) }] : [];
    patch.push({
      op: 'add',
      path: `${base}/env`,
      value: [...kept, ...injected, ...fileEnv, ...started],
    });
    // The wrapper writes the files as the container's user before the app
    // starts; a read-only mount would refuse it.
    (c.volumeMounts ?? []).forEach((m, j) => {
      if (filePlan.replaced.has(m.name) && m.readOnly) {
        patch.push({ op: 'remove', path: `${base}/volumeMounts/${j}/readOnly` });
      }
    });
    const ownMounts = app
      ? [...mounts, { name: RUN_VOLUME_NAME, mountPath: RUN_MOUNT_PATH }]
      : mounts;
    if (c.volumeMounts) {
      for (const m of ownMounts) {
        patch.push({ op: 'add', path: `${base}/volumeMounts/-`, value: m });
      }
    } else patch.push({ op: 'add', path: `${base}/volumeMounts`, value: ownMounts });
    if (app && !c.startupProbe) {
      patch.push({ op: 'add', path: `${base}/startupProbe`, value: startedProbe(c.name) });
    }
  }

  const init: V1Container = {
    name: INIT_CONTAINER_NAME,
    image: cfg.initImage,
    command: [IMAGE_WRAPPER_PATH, '--install', WRAPPER_PATH],
    volumeMounts: [{ name: VOLUME_NAME, mountPath: MOUNT_PATH }],
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '32Mi' } },
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      runAsUser: 65532,
      capabilities: { drop: ['ALL'] },
    },
  };
  // First: init containers run one after another, and the wrapped ones (and
  // the app) need the wrapper in place.
  if (spec.initContainers && spec.initContainers.length > 0) {
    patch.push({ op: 'add', path: '/spec/initContainers/0', value: init });
  } else patch.push({ op: 'add', path: '/spec/initContainers', value: [init] });

  patch.push({
    op: 'add',
    path: `/metadata/annotations/${escapePointer('cloudtaser.io/injected-by')}`,
    value: 'cloudtaser-webhook',
  });
  const warnings = filePlan.kept.map(
    (k) =>
      `cloudtaser: Secret volume ${k.name} kept as it is (${k.why}); its files still come from the native Secret`,
  );
  if (filePlan.kept.length > 0) {
    patch.push({
      op: 'add',
      path: `/metadata/annotations/${escapePointer(NATIVE_VOLUMES_ANNOTATION)}`,
      value: filePlan.kept.map((k) => k.name).join(','),
    });
  }
  return {
    allowed: true,
    patch,
    reason: 'injected',
    ...(warnings.length > 0 ? { warnings } : {}),
  };
}
