package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// harden makes the wrapper's memory harder to read from outside: not
// dumpable (no core dumps; /proc/<pid>/mem and environ closed to the pod's
// other users and to ptrace) and, where the pod may lock enough memory,
// never swapped. Best effort: a pod without those rights still runs, and
// the log says what did not happen.
func harden() {
	const prSetDumpable = 4
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetDumpable, 0, 0); errno != 0 {
		logf("warning: could not make itself non-dumpable: %v", errno)
	}
	const rlimitMemlock = 8
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(rlimitMemlock, &lim); err != nil {
		logf("memory not locked: cannot read RLIMIT_MEMLOCK: %v", err)
		return
	}
	if why := lockRefusal(lim.Cur, hasCapability(os.ReadFile, capIPCLock)); why != "" {
		logf("memory not locked: %s", why)
		return
	}
	// MCL_ONFAULT locks pages as they are touched instead of faulting in
	// every mapping at once: the Go runtime reserves about a gigabyte of
	// address space, and populating it cost ~80 MB of resident memory.
	err := syscall.Mlockall(syscall.MCL_CURRENT | syscall.MCL_FUTURE | mclOnfault)
	if err == syscall.EINVAL {
		// A kernel before 4.4 without MCL_ONFAULT.
		err = syscall.Mlockall(syscall.MCL_CURRENT | syscall.MCL_FUTURE)
	}
	if err != nil {
		logf("memory not locked: mlockall: %v", err)
	}
}

const mclOnfault = 4

const capIPCLock = 14

// lockRefusal says why locking would be unsafe, or "" when it is safe.
// MCL_FUTURE under a small RLIMIT_MEMLOCK would make the Go runtime's later
// allocations fail, so lock only when the limit cannot bite: it is large or
// unlimited, or CAP_IPC_LOCK exempts the process from it.
func lockRefusal(limit uint64, ipcLock bool) string {
	if ipcLock || limit == ^uint64(0) || limit >= 1<<30 {
		return ""
	}
	return fmt.Sprintf("RLIMIT_MEMLOCK is %d KiB (below 1 GiB, and no CAP_IPC_LOCK); raise the container's memlock limit to keep its pages out of swap", limit>>10)
}

// hasCapability reads the effective capability set from /proc/self/status.
func hasCapability(read func(string) ([]byte, error), bit uint) bool {
	b, err := read("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			set, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && set&(1<<bit) != 0
		}
	}
	return false
}
