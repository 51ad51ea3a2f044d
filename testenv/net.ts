// Loopback ports for the servers the test environment starts.
import { createServer, type AddressInfo } from 'node:net';

function anyFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => {
        resolve(p);
      });
    });
  });
}

/**
 * A loopback port that was free a moment ago. With `avoid`, one not in it
 * (and then added to it), so the ports of one start differ; `neighbours`
 * also keeps it off the ports next to those: OpenBao's dev server binds
 * port+1 for cluster traffic.
 */
export async function freePort(avoid?: Set<number>, neighbours = false): Promise<number> {
  for (;;) {
    const port = await anyFreePort();
    if (!avoid) return port;
    const taken = avoid.has(port) || (neighbours && (avoid.has(port + 1) || avoid.has(port - 1)));
    if (!taken) {
      avoid.add(port);
      return port;
    }
  }
}
