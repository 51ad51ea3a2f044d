import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  parseAllowedSigners,
  findSigner,
  matchPatternList,
  parseSignerTime,
} from './allowed-signers.js';
import { describeKey, EncryptedKeyError, fingerprint, KeyError, parsePrivateKey } from './keys.js';
import { parseSignature, signMessage, SignatureFormatError, verifyMessage } from './sshsig.js';

// Made by `ssh-keygen -Y sign -n cloudtaser-plan` (OpenSSH 9.2) over "hello\n".
const KNOWN_PUB =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDqRuuBoBk+STUshGPST/1z7iKFZF66xq7XtTioNXGSF alice';
const KNOWN_SIG = `-----BEGIN SSH SIGNATURE-----
U1NIU0lHAAAAAQAAADMAAAALc3NoLWVkMjU1MTkAAAAgOpG64GgGT5JNSyEY9JP/XPuIoV
kXrrGrte1OKg1cZIUAAAAPY2xvdWR0YXNlci1wbGFuAAAAAAAAAAZzaGE1MTIAAABTAAAA
C3NzaC1lZDI1NTE5AAAAQMuRTZwUuOgS2jFr9zxEQlPp56PI2bCEUpOtYErWE8AwWEPbdp
n42ekcj33B9enDm8fF7B8u70l6IgY0elduago=
-----END SSH SIGNATURE-----
`;
const HELLO = Buffer.from('hello\n');

function pem(type: 'ed25519' | 'rsa' | 'ec', curve?: string): string {
  const opts =
    type === 'rsa'
      ? { modulusLength: 2048 }
      : type === 'ec'
        ? { namedCurve: curve ?? 'P-256' }
        : {};
  const { privateKey } = generateKeyPairSync(type as 'ed25519', opts as object);
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

describe('SSHSIG', () => {
  it('verifies a signature ssh-keygen made, and only over the same message and key', () => {
    const sig = parseSignature(KNOWN_SIG);
    expect(sig.namespace).toBe('cloudtaser-plan');
    expect(sig.hash).toBe('sha512');
    expect(sig.algorithm).toBe('ssh-ed25519');
    const blob = Buffer.from(KNOWN_PUB.split(' ')[1] ?? '', 'base64');
    expect(sig.publicKey.blob.equals(blob)).toBe(true);
    expect(fingerprint(blob)).toBe('SHA256:gBENlJ7aEZsDrEXM6JMKE2U/ZoXEw2uI6Hz1iXwJJes');
    expect(verifyMessage(sig, HELLO)).toBe(true);
    expect(verifyMessage(sig, Buffer.from('hello!\n'))).toBe(false);
    // The namespace is part of what is signed: the same bytes under another one fail.
    expect(verifyMessage({ ...sig, namespace: 'git' }, HELLO)).toBe(false);
  });

  it.each([
    ['ed25519', pem('ed25519'), 'ssh-ed25519', 'ED25519'],
    ['rsa', pem('rsa'), 'rsa-sha2-512', 'RSA'],
    ['ecdsa p256', pem('ec', 'P-256'), 'ecdsa-sha2-nistp256', 'ECDSA'],
    ['ecdsa p384', pem('ec', 'P-384'), 'ecdsa-sha2-nistp384', 'ECDSA'],
    ['ecdsa p521', pem('ec', 'P-521'), 'ecdsa-sha2-nistp521', 'ECDSA'],
  ])('signs and verifies with %s keys', (_name, keyPem, algorithm, label) => {
    const key = parsePrivateKey(keyPem);
    const armored = signMessage(key, 'cloudtaser-plan', HELLO);
    expect(armored).toMatch(
      /^-----BEGIN SSH SIGNATURE-----\n([A-Za-z0-9+/=]{70}\n)*[A-Za-z0-9+/=]{1,70}\n-----END SSH SIGNATURE-----\n$/,
    );
    const sig = parseSignature(armored);
    expect(sig.algorithm).toBe(algorithm);
    expect(describeKey(sig.publicKey)).toMatch(new RegExp(`^${label} key SHA256:`));
    expect(verifyMessage(sig, HELLO)).toBe(true);
    expect(verifyMessage(sig, Buffer.from('hellO\n'))).toBe(false);
    // Another key's signature does not pass as this key's.
    const other = parseSignature(
      signMessage(parsePrivateKey(pem('ed25519')), 'cloudtaser-plan', HELLO),
    );
    expect(verifyMessage({ ...sig, raw: other.raw, algorithm: other.algorithm }, HELLO)).toBe(
      false,
    );
  });

  it('ignores text after the END line, as ssh-keygen does', () => {
    const sig = parseSignature(`${KNOWN_SIG}# a note\n{"x": 1}\n`);
    expect(verifyMessage(sig, HELLO)).toBe(true);
  });

  it('says what is wrong with a file that is not a signature', () => {
    expect(() => parseSignature('hello')).toThrow(SignatureFormatError);
    expect(() => parseSignature('hello')).toThrow(
      'it does not start with -----BEGIN SSH SIGNATURE-----',
    );
    expect(() => parseSignature(KNOWN_SIG.replace('-----END SSH SIGNATURE-----', ''))).toThrow(
      'has no -----END SSH SIGNATURE----- line',
    );
    const truncated = KNOWN_SIG.replace(/n42ekcj.*\n/, '');
    expect(() => parseSignature(truncated)).toThrow(SignatureFormatError);
  });

  it('refuses keys it cannot use with a clear message', () => {
    expect(() => parsePrivateKey(KNOWN_PUB)).toThrow(
      'this is a public key; pass the private key file',
    );
    expect(() => parsePrivateKey('nonsense')).toThrow(KeyError);
    const { privateKey } = generateKeyPairSync('ed25519');
    const encrypted = privateKey
      .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' })
      .toString();
    expect(() => parsePrivateKey(encrypted)).toThrow(EncryptedKeyError);
  });
});

describe('allowed signers', () => {
  const key = KNOWN_PUB.split(' ').slice(0, 2).join(' ');
  const blob = Buffer.from(KNOWN_PUB.split(' ')[1] ?? '', 'base64');
  const now = new Date('2026-04-01T10:00:00Z');

  it('reads principals, options and keys as ssh-keygen documents them', () => {
    const signers = parseAllowedSigners(
      [
        '# security team',
        '',
        `alice@example.com,bob@example.com ${key} a comment`,
        `"carol@example.com,dave smith" namespaces="cloudtaser-plan,file",valid-after="20260101" ${key}`,
        `  *@example.com cert-authority ${key}`,
        `erin@example.com NAMESPACES="git" ${key}\r`,
      ].join('\n'),
    );
    expect(signers.map((s) => [s.line, s.principals, s.namespaces, s.certAuthority])).toEqual([
      [3, 'alice@example.com,bob@example.com', undefined, false],
      [4, 'carol@example.com,dave smith', 'cloudtaser-plan,file', false],
      [5, '*@example.com', undefined, true],
      [6, 'erin@example.com', 'git', false],
    ]);
    expect(signers[1]?.validAfter?.getFullYear()).toBe(2026);
    // A CA line and a git-only line do not accept a plain plan signature.
    expect(findSigner(signers, blob, 'cloudtaser-plan', now)).toEqual({
      ok: true,
      principals: ['alice@example.com,bob@example.com', 'carol@example.com,dave smith'],
    });
  });

  it('says why a listed key is not accepted', () => {
    const signers = parseAllowedSigners(
      [
        `a@x namespaces="git" ${key}`,
        `b@x valid-before="20260301Z" ${key}`,
        `c@x valid-after="202605011200Z" ${key}`,
        `d@x cert-authority ${key}`,
      ].join('\n'),
    );
    expect(findSigner(signers, blob, 'cloudtaser-plan', now)).toEqual({
      ok: false,
      listed: true,
      why: [
        'line 1: namespaces="git" does not include cloudtaser-plan',
        'line 2: expired 2026-03-01T00:00:00.000Z',
        'line 3: not valid before 2026-05-01T12:00:00.000Z',
        'line 4: cert-authority (certificates are not supported)',
      ],
    });
    expect(findSigner(signers, Buffer.from('other'), 'cloudtaser-plan', now)).toEqual({
      ok: false,
      listed: false,
      why: [],
    });
  });

  it('names the line of a malformed entry', () => {
    expect(() => parseAllowedSigners(`ok@x ${key}\nbad@x ssh-ed25519 !!!`)).toThrow(
      expect.objectContaining({ line: 2, message: 'the key is not base64' }),
    );
    expect(() => parseAllowedSigners(`a@x frobnicate ${key}`)).toThrow(
      'unsupported option "frobnicate"',
    );
    expect(() => parseAllowedSigners(`a@x valid-after="2026" ${key}`)).toThrow('is not YYYYMMDD');
    expect(() => parseAllowedSigners(`a@x ssh-rsa ${key.split(' ')[1] ?? ''}`)).toThrow(
      'the key blob is "ssh-ed25519", not ssh-rsa',
    );
    expect(() => parseAllowedSigners(`"a@x ${key}`)).toThrow('unterminated quote');
  });

  it('matches pattern-lists with wildcards and negation', () => {
    expect(matchPatternList('cloudtaser-plan', 'cloudtaser-*')).toBe(true);
    expect(matchPatternList('cloudtaser-plan', 'git,file')).toBe(false);
    expect(matchPatternList('cloudtaser-plan', '*,!cloudtaser-plan')).toBe(false);
    expect(matchPatternList('cloudtaser-plan', 'cloudtaser-pla?')).toBe(true);
    expect(matchPatternList('cloudtaser.plan', 'cloudtaser-plan')).toBe(false);
  });

  it('reads timestamps in local time unless they end in Z, and rejects impossible dates', () => {
    expect(parseSignerTime('20260401Z')?.toISOString()).toBe('2026-04-01T00:00:00.000Z');
    expect(parseSignerTime('202604011030Z')?.toISOString()).toBe('2026-04-01T10:30:00.000Z');
    expect(parseSignerTime('20260401103015Z')?.toISOString()).toBe('2026-04-01T10:30:15.000Z');
    expect(parseSignerTime('20260401')?.getTime()).toBe(new Date(2026, 3, 1).getTime());
    expect(parseSignerTime('20261340Z')).toBeUndefined();
    expect(parseSignerTime('2026-04-01')).toBeUndefined();
  });
});
