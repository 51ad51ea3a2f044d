// Paginated lists (limit/continue), restarting when the server's snapshot
// expires (410 Gone), so a cluster of any size is read in bounded pages.
import { kubeError, statusOf, type KubeAction } from './errors.js';

export interface Page<T> {
  items: T[];
  metadata?: { _continue?: string | undefined } | undefined;
}

export const PAGE_SIZE = 500;

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
