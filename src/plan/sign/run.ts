// `plan sign`, `plan verify` and `--require-signature`: the file handling
// and messages around the signature format (sshsig.ts), the allowed signers
// (allowed-signers.ts) and the signed content (content.ts).
//
// The signature lives beside the plan, in `<plan>.sig`: the plan stays the
// file people edit and protect rewrites, and the .sig is exactly what
// `ssh-keygen -Y sign` writes, so `ssh-keygen -Y verify` reads it too. After
// the armored signature, `plan sign` appends a copy of the content it signed
// (ssh-keygen ignores what follows the END line). That copy lets `verify`
// name what changed; it is trusted only once the signature verifies over
// it, so editing it cannot make a changed plan pass or misreport a change.
import { readFile } from 'node:fs/promises';
import { say, type Context } from '../../core/context.js';
import { UserError } from '../../core/errors.js';
import { writeFileAtomic } from '../../core/files.js';
import { safeLine } from '../display.js';
import { readFailureReason } from '../../core/read-failure.js';
import type { LoadedPlan } from '../read.js';
import {
  AllowedSignersError,
  findSigner,
  parseAllowedSigners,
  type AllowedSigner,
} from './allowed-signers.js';
import { contentValue, diffContent, parseContent, signedContent } from './content.js';
import { describeKey, EncryptedKeyError, KeyError, parsePrivateKey } from './keys.js';
import { END, parseSignature, signMessage, SignatureFormatError, verifyMessage } from './sshsig.js';

/** The SSHSIG namespace: a signature made for git commits or anything else does not pass as a plan's. */
export const SIGNATURE_NAMESPACE = 'cloudtaser-plan';
/** At most this many changes are listed; the rest are counted. */
export const MAX_LISTED_CHANGES = 20;

const COPY_HEADER =
  '# What this signature covers: the signed content of the plan (cloudtaser plan signed-content).\n' +
  '# cloudtaser plan verify compares the plan with it to name what changed.\n';

/** `<plan>.sig`, where the signature of a plan is looked for. */
export const signatureFileOf = (planFile: string): string => `${planFile}.sig`;

async function readText(file: string, display: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read ${what} ${safeLine(display)}: ${readFailureReason(e)}`);
  }
}

const counts = (loaded: LoadedPlan): string => {
  const t = loaded.plan.tenants;
  const w = t.reduce((n, x) => n + x.workloads.length, 0);
  return `${t.length} tenant(s), ${w} workload(s)`;
};

export interface SignOptions {
  display: string;
  keyFile: string;
  keyDisplay: string;
  /** Where the signature goes; `<plan>.sig` by default. */
  output: string;
  outputDisplay: string;
}

/** Signs the plan's content with an unencrypted SSH private key and writes `<plan>.sig`. */
export async function signPlan(loaded: LoadedPlan, o: SignOptions, ctx: Context): Promise<void> {
  const keyText = await readText(o.keyFile, o.keyDisplay, 'key');
  let key;
  try {
    key = parsePrivateKey(keyText);
  } catch (e) {
    if (e instanceof EncryptedKeyError) {
      throw new UserError(
        `key ${safeLine(o.keyDisplay)}: ${e.message}; cloudtaser reads only unencrypted private keys`,
        `sign with ssh-keygen instead (it asks for the passphrase or uses ssh-agent): cloudtaser plan signed-content ${o.display} | ssh-keygen -Y sign -n ${SIGNATURE_NAMESPACE} -f ${o.keyDisplay} > ${o.outputDisplay}`,
      );
    }
    if (e instanceof KeyError) throw new UserError(`key ${safeLine(o.keyDisplay)}: ${e.message}`);
    throw e;
  }
  const content = signedContent(loaded.plan);
  const armored = signMessage(key, SIGNATURE_NAMESPACE, content);
  const text = `${armored}${COPY_HEADER}${content.toString('utf8')}`;
  // Written whole or not at all: a reader never sees half a signature.
  await writeFileAtomic(o.output, text, { display: safeLine(o.outputDisplay) });
  say(
    ctx.stdout,
    `${o.outputDisplay}: signed ${o.display} (${counts(loaded)}) with ${describeKey(key.public)}, namespace ${SIGNATURE_NAMESPACE}`,
  );
}

export interface VerifyOptions {
  display: string;
  allowedSigners: string;
  allowedDisplay: string;
  signature: string;
  signatureDisplay: string;
}

export interface Verified {
  principals: string[];
  key: string;
}

/** The copy of the signed content kept after the END line, when there is one. */
function storedCopy(text: string): Buffer | undefined {
  const at = text.indexOf(`\n${END}`);
  if (at < 0) return undefined;
  const afterEnd = text.indexOf('\n', at + 1 + END.length);
  if (afterEnd < 0) return undefined;
  let rest = text.slice(afterEnd + 1);
  while (rest.startsWith('#')) {
    const nl = rest.indexOf('\n');
    rest = nl < 0 ? '' : rest.slice(nl + 1);
  }
  return rest.trim() === '' ? undefined : Buffer.from(rest, 'utf8');
}

async function allowedSigners(o: VerifyOptions): Promise<AllowedSigner[]> {
  const text = await readText(o.allowedSigners, o.allowedDisplay, 'allowed signers file');
  try {
    return parseAllowedSigners(text);
  } catch (e) {
    if (e instanceof AllowedSignersError) {
      throw new UserError(`${safeLine(o.allowedDisplay)}:${e.line}: ${safeLine(e.message)}`);
    }
    throw e;
  }
}

/**
 * Checks the plan against its signature and the allowed signers: the
 * signature is well formed, made for the cloudtaser-plan namespace, by a key
 * the file accepts for that namespace now, over this plan's signed content.
 * Anything else is a UserError (exit 2) saying which, and for a plan
 * changed since it was signed, what changed.
 */
export async function verifyPlanSignature(
  loaded: LoadedPlan,
  o: VerifyOptions,
  ctx: Context,
): Promise<Verified> {
  const signers = await allowedSigners(o);
  let sigText: string;
  try {
    sigText = await readFile(o.signature, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new UserError(
        `${o.display} is not signed: there is no ${o.signatureDisplay}`,
        `a reviewer signs it with: cloudtaser plan sign ${o.display} --key ~/.ssh/id_ed25519`,
      );
    }
    const code = (e as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new UserError(`cannot read signature ${safeLine(o.signatureDisplay)}: ${code}`);
  }
  let sig;
  try {
    sig = parseSignature(sigText);
  } catch (e) {
    if (e instanceof SignatureFormatError) {
      throw new UserError(`${o.signatureDisplay} is not a valid SSH signature: ${e.message}`);
    }
    throw e;
  }
  const key = describeKey(sig.publicKey);
  if (sig.namespace !== SIGNATURE_NAMESPACE) {
    throw new UserError(
      `${o.signatureDisplay} was made for namespace ${JSON.stringify(safeLine(sig.namespace, 60))}, not ${SIGNATURE_NAMESPACE}`,
      `sign with cloudtaser plan sign, or ssh-keygen -Y sign -n ${SIGNATURE_NAMESPACE}`,
    );
  }
  const signer = findSigner(signers, sig.publicKey.blob, SIGNATURE_NAMESPACE, ctx.now());
  if (!signer.ok) {
    throw new UserError(
      signer.listed
        ? `${o.signatureDisplay} is signed with ${key}, which ${o.allowedDisplay} does not accept now: ${signer.why.join('; ')}`
        : `${o.signatureDisplay} is signed with ${key}, which ${o.allowedDisplay} does not list`,
    );
  }
  const by = `${signer.principals.map((p) => safeLine(p, 80)).join(', ')} (${key})`;
  const content = signedContent(loaded.plan);
  if (verifyMessage(sig, content)) return { principals: signer.principals, key };

  if (verifyMessage(sig, Buffer.from(loaded.text, 'utf8'))) {
    // `ssh-keygen -Y sign plan.yaml`: right key, wrong bytes. Such a signature
    // would break at protect's first status update, so it is not accepted.
    throw new UserError(
      `${o.signatureDisplay} signs the bytes of ${o.display} itself, not its signed content`,
      `sign the content instead: cloudtaser plan signed-content ${o.display} | ssh-keygen -Y sign -n ${SIGNATURE_NAMESPACE} -f KEY > ${o.signatureDisplay}`,
    );
  }
  const copy = storedCopy(sigText);
  if (copy === undefined) {
    throw new UserError(
      `${o.display} does not match its signature by ${by}: it changed since it was signed`,
      `${o.signatureDisplay} holds no copy of the signed content (it was not made by cloudtaser plan sign), so what changed cannot be named`,
    );
  }
  const signed = verifyMessage(sig, copy) ? parseContent(copy.toString('utf8')) : undefined;
  if (!signed) {
    throw new UserError(
      `${o.display} does not match its signature by ${by}, and neither does the copy of the signed content in ${o.signatureDisplay} (edited after signing?)`,
    );
  }
  const changes = diffContent(signed, contentValue(loaded.plan));
  const listed = changes.slice(0, MAX_LISTED_CHANGES).map((c) => `  ${safeLine(c)}`);
  if (changes.length === 0) {
    // Same values, other bytes: only a different rendering of the same content can do that.
    listed.push(
      '  no reviewed value differs, but the signed bytes do (signed by another version of cloudtaser?)',
    );
  }
  if (changes.length > MAX_LISTED_CHANGES) {
    listed.push(`  … and ${changes.length - MAX_LISTED_CHANGES} more`);
  }
  throw new UserError(
    [`${o.display} changed since ${by} signed it:`, ...listed].join('\n'),
    `review the change, then sign again: cloudtaser plan sign ${o.display} --key KEY`,
  );
}

/**
 * `--require-signature FILE` of apply-plan, import and protect: the plan
 * must carry a valid signature by a key FILE allows, or the command stops
 * (exit 2) before touching anything.
 */
export async function requireSignature(
  loaded: LoadedPlan,
  planFile: string,
  display: string,
  allowedSignersFile: string,
  allowedDisplay: string,
  ctx: Context,
): Promise<void> {
  // From the plan's path, not loaded.file: a plan re-read under protect's lock carries its display name there.
  const sigFile = signatureFileOf(planFile);
  const v = await verifyPlanSignature(
    loaded,
    {
      display,
      allowedSigners: allowedSignersFile,
      allowedDisplay,
      signature: sigFile,
      signatureDisplay: signatureFileOf(display),
    },
    ctx,
  );
  say(ctx.stdout, `Signature: ${display} signed by ${v.principals.join(', ')} (${v.key})`);
}
