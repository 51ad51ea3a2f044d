// The test environment's free-port finder, for helpers that start servers of their own.
export { freePort } from '../../testenv/net.js';
