// Shared by the test files that start a sandbox with a real node.
export { withNodeTestLock } from '../../testenv/pods.js';
