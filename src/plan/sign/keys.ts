// SSH keys as node:crypto KeyObjects: public key blobs (RFC 4253 §6.6,
// RFC 5656 §3.1, RFC 8709 §4) both ways, and unencrypted private keys in
// the OpenSSH format ssh-keygen writes (PROTOCOL.key) or in PEM/PKCS#8.
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { b64url, padTo, sshMpint, sshString, WireError, WireReader } from './wire.js';

interface Curve {
  /** The curve's name inside the blob, and the key type is `ecdsa-sha2-<name>`. */
  ssh: 'nistp256' | 'nistp384' | 'nistp521';
  jwk: 'P-256' | 'P-384' | 'P-521';
  /** Bytes of one coordinate. */
  size: number;
  /** The hash ECDSA signs with for this curve (RFC 5656 §6.2.1). */
  hash: 'sha256' | 'sha384' | 'sha512';
}

const CURVES: readonly Curve[] = [
  { ssh: 'nistp256', jwk: 'P-256', size: 32, hash: 'sha256' },
  { ssh: 'nistp384', jwk: 'P-384', size: 48, hash: 'sha384' },
  { ssh: 'nistp521', jwk: 'P-521', size: 66, hash: 'sha512' },
];

export type SshPublicKey =
  | { kind: 'ed25519'; type: 'ssh-ed25519'; blob: Buffer; key: KeyObject }
  | { kind: 'rsa'; type: 'ssh-rsa'; blob: Buffer; key: KeyObject }
  | { kind: 'ecdsa'; type: string; curve: Curve; blob: Buffer; key: KeyObject };

export interface SshPrivateKey {
  public: SshPublicKey;
  key: KeyObject;
}

/** A key file or blob we cannot use; the message is for a person, never holds key material. */
export class KeyError extends Error {}

/** `SHA256:<base64, unpadded>` of the blob, as ssh-keygen -l prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** "ED25519 key SHA256:…", worded as ssh-keygen -Y verify words it. */
export function describeKey(k: SshPublicKey): string {
  const name = k.kind === 'ed25519' ? 'ED25519' : k.kind === 'rsa' ? 'RSA' : 'ECDSA';
  return `${name} key ${fingerprint(k.blob)}`;
}

function unsupported(type: string): KeyError {
  if (type.startsWith('sk-')) {
    return new KeyError(
      `${type} (a FIDO security key) is not supported: its signatures need the authenticator's flags and counter, which cloudtaser does not check`,
    );
  }
  if (type.includes('-cert-v01@openssh.com')) {
    return new KeyError(`${type} is an SSH certificate; only plain keys are supported`);
  }
  return new KeyError(
    `key type ${JSON.stringify(type.slice(0, 40))} is not supported (ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521 are)`,
  );
}

/** Parses a public key blob (the base64 part of an `ssh-ed25519 AAAA…` line). */
export function parsePublicBlob(blob: Buffer): SshPublicKey {
  try {
    const r = new WireReader(blob);
    const type = r.text();
    if (type === 'ssh-ed25519') {
      const pub = r.string();
      if (pub.length !== 32) throw new KeyError('an ssh-ed25519 key must be 32 bytes');
      const key = createPublicKey({
        key: { kty: 'OKP', crv: 'Ed25519', x: b64url(pub) },
        format: 'jwk',
      });
      return { kind: 'ed25519', type, blob, key };
    }
    if (type === 'ssh-rsa') {
      const e = r.mpint();
      const n = r.mpint();
      const key = createPublicKey({
        key: { kty: 'RSA', n: b64url(n), e: b64url(e) },
        format: 'jwk',
      });
      return { kind: 'rsa', type, blob, key };
    }
    const curve = CURVES.find((c) => type === `ecdsa-sha2-${c.ssh}`);
    if (curve) {
      if (r.text() !== curve.ssh) throw new KeyError(`${type} key names another curve`);
      const key = ecPublic(curve, r.string());
      return { kind: 'ecdsa', type, curve, blob, key };
    }
    throw unsupported(type);
  } catch (e) {
    if (e instanceof KeyError) throw e;
    throw new KeyError(`not a valid SSH public key (${e instanceof Error ? e.message : 'bad'})`);
  }
}

/** An uncompressed point (0x04 ‖ x ‖ y) as a public KeyObject. */
function ecPublic(curve: Curve, q: Buffer, d?: Buffer): KeyObject {
  if (q.length !== 1 + 2 * curve.size || q[0] !== 4) {
    throw new KeyError(`not an uncompressed ${curve.ssh} point`);
  }
  const jwk = {
    kty: 'EC',
    crv: curve.jwk,
    x: b64url(q.subarray(1, 1 + curve.size)),
    y: b64url(q.subarray(1 + curve.size)),
  };
  if (d === undefined) return createPublicKey({ key: jwk, format: 'jwk' });
  return createPrivateKey({ key: { ...jwk, d: b64url(padTo(d, curve.size)) }, format: 'jwk' });
}

/** The SSH public key blob of a node KeyObject (private or public). */
export function blobOf(key: KeyObject): SshPublicKey {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  const jwk = pub.export({ format: 'jwk' });
  const from = (s: string | undefined): Buffer => Buffer.from(s ?? '', 'base64url');
  let blob: Buffer;
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') {
    blob = Buffer.concat([sshString('ssh-ed25519'), sshString(from(jwk.x))]);
  } else if (jwk.kty === 'RSA') {
    blob = Buffer.concat([sshString('ssh-rsa'), sshMpint(from(jwk.e)), sshMpint(from(jwk.n))]);
  } else if (jwk.kty === 'EC') {
    const curve = CURVES.find((c) => c.jwk === jwk.crv);
    if (!curve) throw new KeyError(`EC curve ${String(jwk.crv)} is not one SSH uses`);
    const q = Buffer.concat([
      Buffer.from([4]),
      padTo(from(jwk.x), curve.size),
      padTo(from(jwk.y), curve.size),
    ]);
    blob = Buffer.concat([
      sshString(`ecdsa-sha2-${curve.ssh}`),
      sshString(curve.ssh),
      sshString(q),
    ]);
  } else {
    throw new KeyError(`a ${pub.asymmetricKeyType ?? 'unknown'} key cannot sign SSH signatures`);
  }
  return parsePublicBlob(blob);
}

const OPENSSH_BEGIN = '-----BEGIN OPENSSH PRIVATE KEY-----';
const OPENSSH_END = '-----END OPENSSH PRIVATE KEY-----';
const AUTH_MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');

/** Thrown for a passphrase-protected key: the command adds how to sign it instead. */
export class EncryptedKeyError extends KeyError {}

/**
 * Reads an unencrypted private key: OpenSSH's own format (what ssh-keygen
 * writes by default) or PEM/PKCS#8. Passphrase-protected keys are refused
 * rather than prompted for: the CLI reads no passphrase, and ssh-keygen can
 * sign the same bytes with the agent or a passphrase (see the README).
 */
export function parsePrivateKey(text: string): SshPrivateKey {
  const trimmed = text.trim();
  if (trimmed.startsWith(OPENSSH_BEGIN)) return parseOpenSsh(trimmed);
  if (
    /^-----BEGIN ENCRYPTED PRIVATE KEY-----/.test(trimmed) ||
    /Proc-Type: 4,ENCRYPTED/.test(trimmed)
  ) {
    throw new EncryptedKeyError('the key is passphrase-protected');
  }
  if (/^-----BEGIN (RSA |EC )?PRIVATE KEY-----/.test(trimmed)) {
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: trimmed, format: 'pem' });
    } catch {
      throw new KeyError('not a readable PEM private key');
    }
    return { public: blobOf(key), key };
  }
  if (/^(ssh-|ecdsa-|sk-)\S+ [A-Za-z0-9+/=]+/.test(trimmed)) {
    throw new KeyError('this is a public key; pass the private key file (the one without .pub)');
  }
  throw new KeyError('not an OpenSSH or PEM private key');
}

function parseOpenSsh(armored: string): SshPrivateKey {
  const end = armored.indexOf(OPENSSH_END);
  if (end < 0) throw new KeyError('the OpenSSH private key has no END line');
  const data = Buffer.from(armored.slice(OPENSSH_BEGIN.length, end).replace(/\s+/g, ''), 'base64');
  try {
    if (!data.subarray(0, AUTH_MAGIC.length).equals(AUTH_MAGIC)) {
      throw new KeyError('not an openssh-key-v1 key');
    }
    const r = new WireReader(data.subarray(AUTH_MAGIC.length));
    const cipher = r.text();
    r.text(); // kdf name
    r.string(); // kdf options
    if (cipher !== 'none') throw new EncryptedKeyError('the key is passphrase-protected');
    const count = r.u32();
    if (count !== 1) throw new KeyError(`the file holds ${count} keys; one is expected`);
    const publicBlob = r.string();
    const priv = new WireReader(r.string());
    // Two equal check integers: decryption succeeded (here: the file is intact).
    if (priv.u32() !== priv.u32()) throw new KeyError('the private key is corrupt');
    const type = priv.text();
    let key: KeyObject;
    if (type === 'ssh-ed25519') {
      const pub = priv.string();
      const both = priv.string();
      if (pub.length !== 32 || both.length !== 64) throw new KeyError('bad ssh-ed25519 key');
      key = createPrivateKey({
        key: {
          kty: 'OKP',
          crv: 'Ed25519',
          x: b64url(pub),
          d: b64url(both.subarray(0, 32)),
        },
        format: 'jwk',
      });
    } else if (type === 'ssh-rsa') {
      const n = priv.mpint();
      const e = priv.mpint();
      const d = priv.mpint();
      const iqmp = priv.mpint();
      const p = priv.mpint();
      const q = priv.mpint();
      const big = (b: Buffer): bigint => BigInt(`0x${b.toString('hex') || '0'}`);
      const mag = (v: bigint): Buffer => {
        const hex = v.toString(16);
        return Buffer.from(hex.length % 2 ? `0${hex}` : hex, 'hex');
      };
      // OpenSSH stores iqmp but not the CRT exponents JWK wants; they follow from d.
      const dp = big(d) % (big(p) - 1n);
      const dq = big(d) % (big(q) - 1n);
      key = createPrivateKey({
        key: {
          kty: 'RSA',
          n: b64url(n),
          e: b64url(e),
          d: b64url(d),
          p: b64url(p),
          q: b64url(q),
          dp: b64url(mag(dp)),
          dq: b64url(mag(dq)),
          qi: b64url(iqmp),
        },
        format: 'jwk',
      });
    } else {
      const curve = CURVES.find((c) => type === `ecdsa-sha2-${c.ssh}`);
      if (!curve) throw unsupported(type);
      if (priv.text() !== curve.ssh) throw new KeyError(`${type} key names another curve`);
      const q = priv.string();
      key = ecPublic(curve, q, priv.mpint());
    }
    const derived = blobOf(key);
    if (!derived.blob.equals(publicBlob)) {
      throw new KeyError('the private key does not match the public key stored with it');
    }
    return { public: derived, key };
  } catch (e) {
    if (e instanceof KeyError) throw e;
    if (e instanceof WireError) throw new KeyError('the OpenSSH private key is truncated');
    throw new KeyError('the OpenSSH private key could not be read');
  }
}
