import { readFileSync } from 'node:fs';

/**
 * The package version. Read lazily (never at import time) from package.json,
 * which sits one level above both `src/` and `dist/`.
 */
export function packageVersion(): string {
  const raw = readFileSync(new URL('../package.json', import.meta.url), 'utf8');
  const pkg = JSON.parse(raw) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
}
