// Reading ACL policies well enough to answer "what may a token holding these
// policies do on this path?". Read-only by design: the reports never create
// tokens to ask the server.
//
// OpenBao does not merge every rule that matches a path. Its documented
// precedence:
//  - a rule naming the path exactly is the only one that counts;
//  - otherwise, of the matching glob (`…*`, a prefix) and segment-wildcard
//    (`+`) rules, only the highest-priority one counts. Of two candidates, the
//    lower priority is the one whose first `+` or `*` comes earlier; then the
//    one ending in `*`; then the one with more `+` segments; then the shorter;
//    then the lexicographically smaller.
//  - the same pattern in several policies is one rule with the union of their
//    capabilities, and `deny` in any of them leaves only `deny`.
// So an exact rule without `read` hides a glob that grants it, and a
// narrower glob with `deny` hides a wider one that grants `read`.

export interface PolicyRule {
  path: string;
  capabilities: string[];
}

/** The capabilities `sys/capabilities` reports, in its order. */
const KNOWN = ['sudo', 'read', 'list', 'update', 'delete', 'create', 'patch', 'scan'] as const;

/** Old-style `policy = "…"` values and the capabilities they stand for. */
const OLD_STYLE: Record<string, string[]> = {
  deny: ['deny'],
  read: ['read', 'list'],
  write: ['create', 'read', 'update', 'delete', 'list'],
  sudo: ['create', 'read', 'update', 'delete', 'list', 'sudo'],
};

function capabilitiesOf(body: { capabilities?: unknown; policy?: unknown }): string[] {
  const caps = Array.isArray(body.capabilities) ? body.capabilities.map(String) : [];
  const old = typeof body.policy === 'string' ? (OLD_STYLE[body.policy] ?? []) : [];
  return [...caps, ...old];
}

/** The text of the `{ … }` block starting at `open`, nested braces and strings included. */
function blockAt(text: string, open: number): { body: string; end: number } | undefined {
  let depth = 0;
  let inString = false;
  for (let i = open; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return { body: text.slice(open + 1, i), end: i + 1 };
  }
  return undefined;
}

/** Parses the `path "…" { capabilities = [...] }` blocks of an HCL (or JSON) policy. */
export function parsePolicy(text: string): PolicyRule[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    try {
      const json = JSON.parse(trimmed) as {
        path?: Record<string, { capabilities?: unknown; policy?: unknown }>;
      };
      return Object.entries(json.path ?? {}).map(([path, body]) => ({
        path,
        capabilities: capabilitiesOf(body),
      }));
    } catch {
      return [];
    }
  }
  const rules: PolicyRule[] = [];
  const noComments = text.replace(/^\s*(#|\/\/).*$/gm, '');
  const start = /path\s+"([^"]+)"\s*=?\s*\{/g;
  for (let m = start.exec(noComments); m; m = start.exec(noComments)) {
    const block = blockAt(noComments, m.index + m[0].length - 1);
    if (!block) break;
    start.lastIndex = block.end;
    // Only the block's own settings, not those of nested maps such as allowed_parameters.
    const caps = /(?:^|\n)\s*capabilities\s*=\s*\[([^\]]*)\]/.exec(block.body);
    const old = /(?:^|\n)\s*policy\s*=\s*"([^"]*)"/.exec(block.body);
    rules.push({
      path: m[1] ?? '',
      capabilities: capabilitiesOf({
        capabilities: [...(caps?.[1] ?? '').matchAll(/"([^"]+)"/g)].map((c) => c[1] ?? ''),
        policy: old?.[1],
      }),
    });
  }
  return rules;
}

type RuleKind = 'exact' | 'prefix' | 'segments';

interface MergedRule {
  kind: RuleKind;
  /** Exact: the path. Prefix: the path without its `*`. Segments: the pattern as written. */
  key: string;
  capabilities: Set<string>;
}

/** How OpenBao files a rule's path: exact, a plain prefix, or with `+` segments. */
function classify(rulePath: string): { kind: RuleKind; key: string } {
  const path = rulePath.startsWith('/') ? rulePath.slice(1) : rulePath;
  if (path === '+' || path.includes('/+') || path.startsWith('+/'))
    return { kind: 'segments', key: path };
  if (path.endsWith('*')) return { kind: 'prefix', key: path.slice(0, -1) };
  return { kind: 'exact', key: path };
}

/** One rule per distinct pattern, across every policy: union of capabilities, deny alone wins. */
function merge(rules: readonly PolicyRule[]): MergedRule[] {
  const byKey = new Map<string, MergedRule>();
  for (const r of rules) {
    // A templated path depends on the token's identity, which a report does not have.
    if (r.path.includes('{{')) continue;
    const { kind, key } = classify(r.path);
    const id = `${kind}\0${key}`;
    const merged = byKey.get(id) ?? { kind, key, capabilities: new Set<string>() };
    byKey.set(id, merged);
    if (merged.capabilities.has('deny')) continue;
    if (r.capabilities.includes('deny')) merged.capabilities = new Set(['deny']);
    else for (const c of r.capabilities) merged.capabilities.add(c);
  }
  return [...byKey.values()];
}

interface Candidate {
  rule: MergedRule;
  /** Position of the first `+`, or of the `*` for a plain prefix. */
  firstWildcard: number;
  isPrefix: boolean;
  wildcards: number;
  /** The pattern without a trailing `*`. */
  pattern: string;
}

/** The candidate for a `+` rule if it matches `path`. */
function segmentCandidate(rule: MergedRule, path: string): Candidate | undefined {
  const isPrefix = rule.key.endsWith('*');
  const pattern = isPrefix ? rule.key.slice(0, -1) : rule.key;
  const ruleSegs = pattern.split('/');
  const pathSegs = path.split('/');
  if (pathSegs.length < ruleSegs.length) return undefined;
  if (!isPrefix && pathSegs.length !== ruleSegs.length) return undefined;
  let wildcards = 0;
  for (const [i, seg] of ruleSegs.entries()) {
    const actual = pathSegs[i] ?? '';
    if (seg === '+') wildcards++;
    else if (seg === actual) continue;
    // The last segment of a `*` rule is a prefix of the path's segment.
    else if (!(isPrefix && i === ruleSegs.length - 1 && actual.startsWith(seg))) return undefined;
  }
  return { rule, firstWildcard: rule.key.indexOf('+'), isPrefix, wildcards, pattern };
}

/** Negative when `a` has lower priority than `b` (the documented order). */
function comparePriority(a: Candidate, b: Candidate): number {
  if (a.firstWildcard !== b.firstWildcard) return a.firstWildcard - b.firstWildcard;
  if (a.isPrefix !== b.isPrefix) return a.isPrefix ? -1 : 1;
  if (a.wildcards !== b.wildcards) return b.wildcards - a.wildcards;
  if (a.pattern.length !== b.pattern.length) return a.pattern.length - b.pattern.length;
  return a.pattern < b.pattern ? -1 : a.pattern > b.pattern ? 1 : 0;
}

/** The one rule OpenBao applies to `path`, if any matches. */
export function governingRule(
  rules: readonly PolicyRule[],
  path: string,
): { pattern: string; capabilities: string[] } | undefined {
  const target = path.replace(/^\/+/, '');
  const merged = merge(rules);
  const exact = merged.find((r) => r.kind === 'exact' && r.key === target);
  const show = (r: MergedRule) => ({
    pattern: r.kind === 'prefix' ? `${r.key}*` : r.key,
    capabilities: [...r.capabilities],
  });
  if (exact) return show(exact);
  let best: Candidate | undefined;
  for (const rule of merged) {
    let c: Candidate | undefined;
    if (rule.kind === 'prefix' && target.startsWith(rule.key)) {
      c = { rule, firstWildcard: rule.key.length, isPrefix: true, wildcards: 0, pattern: rule.key };
    } else if (rule.kind === 'segments') c = segmentCandidate(rule, target);
    if (c && (!best || comparePriority(c, best) > 0)) best = c;
  }
  return best ? show(best.rule) : undefined;
}

/**
 * What a token holding these policies may do on `path`, as OpenBao's
 * `sys/capabilities` reports it: known capabilities in its order, or
 * `["deny"]` when the governing rule denies or grants nothing.
 */
export function effectiveCapabilities(rules: readonly PolicyRule[], path: string): string[] {
  const caps = governingRule(rules, path)?.capabilities ?? [];
  if (caps.includes('deny')) return ['deny'];
  const out = KNOWN.filter((c) => caps.includes(c));
  return out.length > 0 ? out : ['deny'];
}

/** Whether a token holding these policies may read `path`. */
export function grantsRead(rules: readonly PolicyRule[], path: string): boolean {
  return effectiveCapabilities(rules, path).includes('read');
}

/** Rules that grant anything beyond `read` on exactly `needed` paths. */
export function excessGrants(rules: readonly PolicyRule[], needed: readonly string[]): string[] {
  const out: string[] = [];
  for (const r of rules) {
    if (r.capabilities.length === 0 || r.capabilities.every((c) => c === 'deny')) continue;
    if (r.path.includes('*') || r.path.includes('+')) {
      out.push(`${r.path} (wildcard)`);
    } else if (!needed.includes(r.path)) {
      out.push(`${r.path} (not used by its workloads)`);
    } else if (r.capabilities.some((c) => c !== 'read')) {
      out.push(`${r.path} (${r.capabilities.filter((c) => c !== 'read').join(', ')})`);
    }
  }
  return out;
}
