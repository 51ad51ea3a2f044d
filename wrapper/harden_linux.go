package main

import "syscall"

// harden makes the wrapper's memory harder to read from outside: not
// dumpable (no core dumps; /proc/<pid>/mem and environ closed to the pod's
// other users and to ptrace) and, where the pod may lock enough memory,
// never swapped. Best effort: a pod without those rights still runs.
func harden() {
	const prSetDumpable = 4
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0)
	// MCL_FUTURE under a small RLIMIT_MEMLOCK would make the Go runtime's
	// later allocations fail, so lock only when the limit cannot bite.
	const rlimitMemlock = 8
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(rlimitMemlock, &lim); err == nil && (lim.Cur == ^uint64(0) || lim.Cur >= 1<<30) {
		_ = syscall.Mlockall(syscall.MCL_CURRENT | syscall.MCL_FUTURE)
	}
}
