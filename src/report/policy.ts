// Reading ACL policies well enough to answer "does this policy let a token
// read this path, and what else does it grant?". Read-only by design: the
// reports never create tokens to ask the server.
//
// Matching follows the documented ACL rules: an exact path, a trailing `*`
// (prefix glob) and `+` (one path segment). A matching rule with "deny" wins.

export interface PolicyRule {
  path: string;
  capabilities: string[];
}

/** Parses the `path "…" { capabilities = [...] }` blocks of an HCL (or JSON) policy. */
export function parsePolicy(text: string): PolicyRule[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    try {
      const json = JSON.parse(trimmed) as { path?: Record<string, { capabilities?: unknown }> };
      return Object.entries(json.path ?? {}).map(([path, body]) => ({
        path,
        capabilities: Array.isArray(body.capabilities) ? body.capabilities.map(String) : [],
      }));
    } catch {
      return [];
    }
  }
  const rules: PolicyRule[] = [];
  const noComments = text.replace(/^\s*(#|\/\/).*$/gm, '');
  for (const m of noComments.matchAll(/path\s+"([^"]+)"\s*\{([^}]*)\}/g)) {
    const caps = /capabilities\s*=\s*\[([^\]]*)\]/.exec(m[2] ?? '');
    rules.push({
      path: m[1] ?? '',
      capabilities: [...(caps?.[1] ?? '').matchAll(/"([^"]+)"/g)].map((c) => c[1] ?? ''),
    });
  }
  return rules;
}

export function ruleMatches(rulePath: string, path: string): boolean {
  const glob = rulePath.endsWith('*');
  const pattern = glob ? rulePath.slice(0, -1) : rulePath;
  const ruleSegs = pattern.split('/');
  const pathSegs = path.split('/');
  if (!glob && ruleSegs.length !== pathSegs.length) return false;
  if (glob && pathSegs.length < ruleSegs.length) return false;
  return ruleSegs.every((seg, i) => {
    const actual = pathSegs[i] ?? '';
    if (seg === '+') return true;
    // The last segment of a glob rule is a prefix.
    if (glob && i === ruleSegs.length - 1) return actual.startsWith(seg);
    return seg === actual;
  });
}

/** Whether any of the policies lets a token read `path`. */
export function grantsRead(rules: readonly PolicyRule[], path: string): boolean {
  const matching = rules.filter((r) => ruleMatches(r.path, path));
  if (matching.some((r) => r.capabilities.includes('deny'))) return false;
  return matching.some((r) => r.capabilities.includes('read'));
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
