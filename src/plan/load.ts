// Reading a plan file, with the validated-plan cache (cache.ts) in front of
// the parser. The parser and the validator — js-yaml, zod and the schema built
// with it — are imported only when the cache does not hold the plan: loading
// them is most of a re-run's module loading (zod alone is ~0.1 s of start-up).
import { readFile } from 'node:fs/promises';
import { UserError } from '../core/errors.js';
import { cachedPlan, storePlan, type PlanCache } from './cache.js';
import { safeLine } from './display.js';
import { readFailureReason } from '../core/read-failure.js';
import { decodePlanBytes } from './text.js';
import type { LoadedPlan } from './read.js';

/**
 * Reads and validates a plan file; a missing or unreadable file is a
 * UserError. `display` is the name messages use (the path as the user typed it).
 * With `cache`, a text validated before (same bytes, same reader) is not
 * parsed and validated again; a plan that fails is never cached.
 */
export async function readPlan(
  file: string,
  display: string = file,
  opts: { cache?: PlanCache | undefined } = {},
): Promise<LoadedPlan> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new UserError(`cannot read plan ${safeLine(display)}: ${readFailureReason(e)}`);
  }
  const text = decodePlanBytes(bytes, display);
  const { cache } = opts;
  if (cache) {
    const plan = await cachedPlan(cache, text);
    if (plan) return { file, text, plan };
  }
  const { parsePlan } = await import('./read.js');
  const loaded = { ...parsePlan(text, display), file };
  if (cache) await storePlan(cache, text, loaded.plan);
  return loaded;
}
