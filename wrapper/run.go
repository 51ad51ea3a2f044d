package main

import (
	"os"
	"os/signal"
	"syscall"
)

// Signals a container runtime or a person sends to PID 1, passed on to the child.
var forwarded = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
}

// Run starts the command with env, forwards signals to it, reaps every
// child (as PID 1 must: orphans are re-parented to us), and returns the
// command's exit code, or 128+N when a signal N ended it.
func Run(path string, argv []string, env []string) int {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded...)
	proc, err := os.StartProcess(path, argv, &os.ProcAttr{
		Env:   env,
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
	})
	if err != nil {
		fail("cannot start %s: %v", argv[0], err)
	}
	// The values now live in the child; drop our references to them.
	for i := range env {
		env[i] = ""
	}
	go func() {
		for s := range sigs {
			_ = proc.Signal(s)
		}
	}()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			fail("waiting for %s: %v", argv[0], err)
		}
		if pid != proc.Pid {
			continue // a re-parented orphan, reaped
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}
