// Paginated lists (limit/continue), restarting when the server's snapshot
// expires (410 Gone), so a cluster of any size is read in bounded pages.
import { kubeError, statusOf, type KubeAction } from './errors.js';
import type { KubeRest } from './rest.js';

export interface Page<T> {
  items: T[];
  metadata?: { _continue?: string | undefined } | undefined;
}

export const PAGE_SIZE = 500;

/** A list reply as the API server's JSON has it (`continue`, which the generated models call `_continue`). */
interface ListReply<T> {
  items: T[];
  metadata?: { continue?: string };
}

/** The page fetcher listAll takes, for a list read as plain JSON at `path` (see rest.ts). */
export function restPages<T>(
  rest: KubeRest,
  path: string,
  pageSize = PAGE_SIZE,
): (cont: string | undefined) => Promise<Page<T>> {
  return async (cont) => {
    const l = await rest.call<ListReply<T>>({
      method: 'GET',
      path,
      query: { limit: String(pageSize), continue: cont },
    });
    return { items: l.items, metadata: { _continue: l.metadata?.continue } };
  };
}

export async function listAll<T, R>(
  fetchPage: (cont: string | undefined) => Promise<Page<T>>,
  map: (item: T) => R,
  action: KubeAction,
  server: string,
): Promise<R[]> {
  for (let attempt = 0; ; attempt++) {
    const out: R[] = [];
    let cont: string | undefined;
    try {
      do {
        const page = await fetchPage(cont);
        // Map each page at once so raw objects (for Secrets: their values)
        // are not kept past the page that carried them.
        for (const item of page.items) out.push(map(item));
        cont = page.metadata?._continue || undefined;
      } while (cont);
      return out;
    } catch (e) {
      if (statusOf(e) === 410 && attempt < 3) continue;
      throw kubeError(e, action, server);
    }
  }
}
