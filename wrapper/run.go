package main

import (
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// Signals a container runtime or a person sends to PID 1, passed on to the
// command's whole process group.
var forwarded = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH,
}

// stopSignals also go to orphans outside the command's group (daemons that
// called setsid): they mean "shut down", which concerns every process the
// pod runs. The others (reload, window size, ...) are the command's business.
var stopSignals = map[syscall.Signal]bool{syscall.SIGTERM: true, syscall.SIGINT: true, syscall.SIGQUIT: true}

// orphanGrace is how long processes left behind by the command get, after
// SIGTERM, before SIGKILL. Once PID 1 exits the kernel SIGKILLs everything
// left in the pod without warning; this gives them the chance to finish.
const orphanGrace = 10 * time.Second

const prSetChildSubreaper = 36

// afterStart, when set, runs once the command has started (main sets it to
// write the startup probe's marker).
var afterStart func()

// Run starts the command with env in its own process group and returns its
// exit code, or 128+N when a signal N ended it. It forwards signals to the
// whole group (a `sh -c` entrypoint that does not exec passes nothing on),
// and stop signals also to orphans; it reaps every child (as PID 1 must:
// orphans are re-parented to us); and before returning it asks whatever the
// command left running to stop, then kills it after orphanGrace.
func Run(path string, argv []string, env []string) int {
	return run(path, argv, env, orphanGrace)
}

func run(path string, argv []string, env []string, grace time.Duration) int {
	// As a subreaper the wrapper adopts orphans of the command's tree even
	// when it is not PID 1 (a pod sharing its PID namespace, a test), so
	// they are stopped and reaped the same way.
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, append([]os.Signal{syscall.SIGCHLD}, forwarded...)...)
	defer signal.Stop(sigs)
	proc, err := startGroup(path, argv, env)
	if err != nil {
		fail("cannot start %s: %v", argv[0], err)
	}
	if afterStart != nil {
		afterStart()
	}
	// The values now live in the child; drop our references to them.
	for i := range env {
		env[i] = ""
	}
	r := &reaper{self: os.Getpid(), child: proc.Pid, code: -1}
	var deadline <-chan time.Time
	stopping, killed := false, false
	for {
		if r.reap() {
			return r.code
		}
		if r.code >= 0 && !stopping {
			// The command ended: whatever it left behind is asked to stop.
			stopping = true
			r.signalRest(syscall.SIGTERM)
			deadline = time.After(grace)
		}
		select {
		case s := <-sigs:
			if sig := s.(syscall.Signal); sig != syscall.SIGCHLD {
				r.forward(sig)
			}
		case <-deadline:
			if killed {
				// Something SIGKILL cannot end (stuck in the kernel) must
				// not keep the pod from ending.
				return r.code
			}
			killed = true
			r.signalRest(syscall.SIGKILL)
			deadline = time.After(2 * time.Second)
		}
	}
}

// startGroup starts the command as the leader of a new process group. With
// a terminal on stdin that group becomes the terminal's foreground group, so
// an interactive command can still read it.
func startGroup(path string, argv, env []string) (*os.Process, error) {
	attr := &os.ProcAttr{Env: env, Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}}
	if isTerminal(0) {
		attr.Sys = &syscall.SysProcAttr{Setpgid: true, Foreground: true, Ctty: 0}
		if p, err := os.StartProcess(path, argv, attr); err == nil {
			return p, nil
		}
		// Not our controlling terminal: a plain group is still right.
	}
	attr.Sys = &syscall.SysProcAttr{Setpgid: true}
	return os.StartProcess(path, argv, attr)
}

func isTerminal(fd int) bool {
	var t syscall.Termios
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return errno == 0
}

type reaper struct {
	self, child int // our PID, the command's PID (= its process group)
	code        int // the command's exit code once reaped, else -1
}

// reap collects every child that has ended; it reports true once none is
// left and the command's code is known.
func (r *reaper) reap() bool {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.ECHILD:
			if r.code < 0 {
				fail("waiting for the command: no child left")
			}
			return true
		case err != nil:
			fail("waiting for the command: %v", err)
		case pid <= 0:
			return false
		case pid == r.child:
			if ws.Signaled() {
				r.code = 128 + int(ws.Signal())
			} else {
				r.code = ws.ExitStatus()
			}
		}
		// Any other PID: a re-parented orphan, now reaped.
	}
}

// forward passes a signal to the command's process group and, for stop
// signals, to every other process that is ours (adopted orphans).
func (r *reaper) forward(sig syscall.Signal) {
	if r.code < 0 {
		// The command is not reaped yet, so its PID still names its group;
		// should it have moved itself to another group, it gets the signal
		// on its own.
		if err := syscall.Kill(-r.child, sig); err != nil {
			_ = syscall.Kill(r.child, sig)
		}
		if stopSignals[sig] {
			for _, p := range r.scan() {
				if p.ppid == r.self && p.pid != r.child {
					_ = syscall.Kill(p.pid, sig)
				}
			}
		}
		return
	}
	r.signalRest(sig)
}

// signalRest signals what remains after the command ended: our children
// (adopted orphans) and the rest of the command's process group.
func (r *reaper) signalRest(sig syscall.Signal) {
	group := false
	for _, p := range r.scan() {
		if p.ppid == r.self {
			_ = syscall.Kill(p.pid, sig)
		}
		group = group || p.pgrp == r.child
	}
	if group {
		// The group still has members, so its ID cannot have been reused.
		_ = syscall.Kill(-r.child, sig)
	}
}

type procInfo struct{ pid, ppid, pgrp int }

// scan lists live processes with their parent and group from /proc
// (zombies excluded: they are reaped, not signalled).
func (r *reaper) scan() []procInfo {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == r.self {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // ended meanwhile
		}
		if p, ok := parseStat(pid, string(b)); ok {
			out = append(out, p)
		}
	}
	return out
}

// parseStat reads state, ppid and pgrp from /proc/<pid>/stat; the command
// name before them is in parentheses and may itself hold spaces or ')'.
func parseStat(pid int, s string) (procInfo, bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return procInfo{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
		return procInfo{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgrp, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return procInfo{}, false
	}
	return procInfo{pid: pid, ppid: ppid, pgrp: pgrp}, true
}
