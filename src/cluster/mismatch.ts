// The flag that lets a command act on a cluster other than its plan's, in a
// module of its own: the commands declare it at start-up, while the check
// itself (and the Kubernetes client it loads) is imported only when it runs.
export const MISMATCH_FLAG = '--cluster-mismatch-ok';
export const MISMATCH_HELP =
  "act even when the current context's cluster is not the one the plan was made from";
