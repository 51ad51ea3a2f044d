// SSH signatures as `ssh-keygen -Y sign` makes them (OpenSSH's
// PROTOCOL.sshsig): the message is hashed, the hash is signed together with
// a magic preamble, a namespace and the hash's name, and the result is
// armored as "-----BEGIN SSH SIGNATURE-----". Implemented on node:crypto so
// signing and verifying need no ssh-keygen, and interoperate with it.
import { createHash, sign as cryptoSign, verify as cryptoVerify } from 'node:crypto';
import { KeyError, parsePublicBlob, type SshPrivateKey, type SshPublicKey } from './keys.js';
import { padTo, sshMpint, sshString, u32, WireError, WireReader } from './wire.js';

const MAGIC = Buffer.from('SSHSIG', 'latin1');
const VERSION = 1;
export const BEGIN = '-----BEGIN SSH SIGNATURE-----';
export const END = '-----END SSH SIGNATURE-----';
/** ssh-keygen's default and the only hash it signs with; sha256 is also verified. */
const HASHES = ['sha512', 'sha256'] as const;
type HashName = (typeof HASHES)[number];

export interface SshSignature {
  publicKey: SshPublicKey;
  namespace: string;
  reserved: Buffer;
  hash: HashName;
  /** The signature algorithm (ssh-ed25519, rsa-sha2-512, ecdsa-sha2-nistp256 …). */
  algorithm: string;
  /** The algorithm-specific signature bytes. */
  raw: Buffer;
}

/** A signature file we cannot read; the message names what is wrong, for a person. */
export class SignatureFormatError extends Error {}

/** The bytes that are actually signed: the preamble, namespace, reserved, hash name and H(message). */
function signedData(namespace: string, reserved: Buffer, hash: HashName, message: Buffer): Buffer {
  return Buffer.concat([
    MAGIC,
    sshString(namespace),
    sshString(reserved),
    sshString(hash),
    sshString(createHash(hash).update(message).digest()),
  ]);
}

/** Signs `message` under `namespace` with SHA-512, as `ssh-keygen -Y sign -n NAMESPACE` does. */
export function signMessage(key: SshPrivateKey, namespace: string, message: Buffer): string {
  const hash: HashName = 'sha512';
  const data = signedData(namespace, Buffer.alloc(0), hash, message);
  const pub = key.public;
  let algorithm: string;
  let raw: Buffer;
  if (pub.kind === 'ed25519') {
    algorithm = 'ssh-ed25519';
    raw = cryptoSign(null, data, key.key);
  } else if (pub.kind === 'rsa') {
    // ssh-keygen signs RSA with SHA-512 here; SHA-1 (ssh-rsa) is not accepted in SSHSIG.
    algorithm = 'rsa-sha2-512';
    raw = cryptoSign('sha512', data, key.key);
  } else {
    algorithm = pub.type;
    const rs = cryptoSign(pub.curve.hash, data, { key: key.key, dsaEncoding: 'ieee-p1363' });
    const size = pub.curve.size;
    raw = Buffer.concat([sshMpint(rs.subarray(0, size)), sshMpint(rs.subarray(size))]);
  }
  const blob = Buffer.concat([
    MAGIC,
    u32(VERSION),
    sshString(pub.blob),
    sshString(namespace),
    sshString(Buffer.alloc(0)),
    sshString(hash),
    sshString(Buffer.concat([sshString(algorithm), sshString(raw)])),
  ]);
  return armor(blob);
}

/** Base64 in lines of 70 characters between the BEGIN and END lines, as ssh-keygen writes it. */
function armor(blob: Buffer): string {
  const b64 = blob.toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 70) lines.push(b64.slice(i, i + 70));
  return `${BEGIN}\n${lines.join('\n')}\n${END}\n`;
}

/**
 * Reads an armored signature. Like ssh-keygen, anything after the END line
 * is ignored (cloudtaser keeps a copy of the signed content there).
 */
export function parseSignature(text: string): SshSignature {
  const start = text.startsWith(BEGIN) ? 0 : -1;
  if (start < 0) throw new SignatureFormatError(`it does not start with ${BEGIN}`);
  const end = text.indexOf(`\n${END}`);
  if (end < 0) throw new SignatureFormatError(`it has no ${END} line`);
  const body = text.slice(BEGIN.length, end).replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) {
    throw new SignatureFormatError('its body is not base64');
  }
  const blob = Buffer.from(body, 'base64');
  try {
    if (!blob.subarray(0, MAGIC.length).equals(MAGIC)) {
      throw new SignatureFormatError('it is not an SSHSIG signature (no SSHSIG preamble)');
    }
    const r = new WireReader(blob.subarray(MAGIC.length));
    const version = r.u32();
    if (version !== VERSION) {
      throw new SignatureFormatError(`signature version ${version} is not supported (1 is)`);
    }
    const publicKey = parsePublicBlob(r.string());
    const namespace = r.text();
    const reserved = r.string();
    const hash = r.text();
    if (!(HASHES as readonly string[]).includes(hash)) {
      throw new SignatureFormatError(
        `hash ${JSON.stringify(hash.slice(0, 20))} is not supported (sha512, sha256 are)`,
      );
    }
    const sig = new WireReader(r.string());
    const algorithm = sig.text();
    const raw = sig.string();
    return { publicKey, namespace, reserved, hash: hash as HashName, algorithm, raw };
  } catch (e) {
    if (e instanceof SignatureFormatError) throw e;
    if (e instanceof KeyError) throw new SignatureFormatError(`its key: ${e.message}`);
    if (e instanceof WireError) throw new SignatureFormatError('it is truncated');
    throw e;
  }
}

/**
 * True when `sig` is a valid signature of `message` by its own key under
 * its own namespace (whether that key and namespace are acceptable is the
 * caller's decision). A signature algorithm that does not fit the key, or
 * RSA with SHA-1, is invalid rather than an error.
 */
export function verifyMessage(sig: SshSignature, message: Buffer): boolean {
  const data = signedData(sig.namespace, sig.reserved, sig.hash, message);
  const k = sig.publicKey;
  try {
    if (k.kind === 'ed25519') {
      return sig.algorithm === 'ssh-ed25519' && cryptoVerify(null, data, k.key, sig.raw);
    }
    if (k.kind === 'rsa') {
      const hash =
        sig.algorithm === 'rsa-sha2-512'
          ? 'sha512'
          : sig.algorithm === 'rsa-sha2-256'
            ? 'sha256'
            : undefined;
      return hash !== undefined && cryptoVerify(hash, data, k.key, sig.raw);
    }
    if (sig.algorithm !== k.type) return false;
    const r = new WireReader(sig.raw);
    const rs = Buffer.concat([padTo(r.mpint(), k.curve.size), padTo(r.mpint(), k.curve.size)]);
    if (r.remaining !== 0) return false;
    return cryptoVerify(k.curve.hash, data, { key: k.key, dsaEncoding: 'ieee-p1363' }, rs);
  } catch (e) {
    if (e instanceof WireError) return false;
    throw e;
  }
}
