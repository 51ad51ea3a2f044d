// The SSH wire encoding (RFC 4251 §5): big-endian uint32, length-prefixed
// strings and mpints. Everything the signature format, key blobs and
// OpenSSH private key files hold is built from these.

/** A malformed blob: the caller turns it into a message naming the file. */
export class WireError extends Error {}

export class WireReader {
  private at = 0;
  constructor(private readonly buf: Buffer) {}

  get remaining(): number {
    return this.buf.length - this.at;
  }

  bytes(n: number): Buffer {
    if (n < 0 || this.at + n > this.buf.length) throw new WireError('truncated');
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  u32(): number {
    return this.bytes(4).readUInt32BE(0);
  }

  string(): Buffer {
    return this.bytes(this.u32());
  }

  /** A string that must be text (names, namespaces): ASCII/UTF-8 as written. */
  text(): string {
    return this.string().toString('utf8');
  }

  /** An mpint as an unsigned big-endian magnitude with no leading zero bytes. */
  mpint(): Buffer {
    const raw = this.string();
    if (raw.length > 0 && (raw[0] ?? 0) & 0x80) throw new WireError('negative mpint');
    let i = 0;
    while (i < raw.length && raw[i] === 0) i++;
    return raw.subarray(i);
  }
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

export function sshString(v: Buffer | string): Buffer {
  const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
  return Buffer.concat([u32(b.length), b]);
}

/** An unsigned magnitude as an mpint: no redundant leading zeros, a 0x00 before a high bit. */
export function sshMpint(magnitude: Buffer): Buffer {
  let i = 0;
  while (i < magnitude.length && magnitude[i] === 0) i++;
  let m = magnitude.subarray(i);
  if (m.length > 0 && (m[0] ?? 0) & 0x80) m = Buffer.concat([Buffer.from([0]), m]);
  return sshString(m);
}

/** Base64url without padding, as JWK wants it. */
export const b64url = (b: Buffer): string => b.toString('base64url');

/** A big-endian magnitude left-padded with zeros to `size` bytes. */
export function padTo(b: Buffer, size: number): Buffer {
  if (b.length > size) throw new WireError('integer too large');
  return Buffer.concat([Buffer.alloc(size - b.length), b]);
}
