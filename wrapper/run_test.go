package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitFor polls cond until it holds or the deadline passes: the tests
// synchronise on observable state, never on a fixed sleep.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// pidFrom reads a PID a test process wrote into a file.
func pidFrom(t *testing.T, file string) int {
	t.Helper()
	var pid int
	waitFor(t, file, 10*time.Second, func() bool {
		b, err := os.ReadFile(file)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	return pid
}

// killLater stops, at the end of the test, a process the test started
// indirectly (it only exists then when the code under test failed).
func killLater(t *testing.T, pid int) {
	t.Cleanup(func() {
		if pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// procState returns the state letter and parent PID of a process, or
// ok=false when it no longer exists (reaped).
func procState(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	s := string(b)
	rest := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ppid, _ = strconv.Atoi(rest[1])
	return rest[0][0], ppid, true
}

type runResult struct {
	code int
	took time.Duration
}

func runAsync(argv []string, grace time.Duration) chan runResult {
	done := make(chan runResult, 1)
	go func() {
		start := time.Now()
		code := run("/bin/sh", argv, os.Environ(), grace)
		done <- runResult{code, time.Since(start)}
	}()
	return done
}

func await(t *testing.T, done chan runResult) runResult {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	return runResult{}
}

func TestRunSignalsTheCommandsWholeProcessGroup(t *testing.T) {
	// A `sh -c` entrypoint that does not exec its last command: SIGTERM to
	// the wrapper must still reach the grandchild doing the work.
	dir := t.TempDir()
	ready, got := filepath.Join(dir, "ready"), filepath.Join(dir, "got-term")
	inner := fmt.Sprintf(`trap "touch %s; exit 0" TERM; echo $$ > %s; while :; do sleep 0.05; done`, got, ready)
	done := runAsync([]string{"sh", "-c", fmt.Sprintf("sh -c '%s'; echo not-exec", inner)}, 5*time.Second)
	killLater(t, pidFrom(t, ready))
	_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	r := await(t, done)
	if !exists(got) {
		t.Fatal("the grandchild never got SIGTERM")
	}
	if r.code != 128+int(syscall.SIGTERM) {
		t.Fatalf("exit code %d, want 143 (the shell ended by SIGTERM)", r.code)
	}
}

func TestRunStopsOrphansBeforeReturning(t *testing.T) {
	// A daemon the command left behind in its own session: not in the
	// command's process group, re-parented to the wrapper. It must get
	// SIGTERM (and time to act on it) before the wrapper exits, since
	// everything left in the pod is SIGKILLed once PID 1 is gone.
	dir := t.TempDir()
	ready, got := filepath.Join(dir, "ready"), filepath.Join(dir, "got-term")
	daemon := fmt.Sprintf(`trap "touch %s; exit 0" TERM; echo $$ > %s; while :; do sleep 0.05; done`, got, ready)
	script := fmt.Sprintf(`setsid sh -c '%s' & i=0; while [ ! -s %s ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; exit 5`, daemon, ready)
	done := runAsync([]string{"sh", "-c", script}, 5*time.Second)
	killLater(t, pidFrom(t, ready))
	r := await(t, done)
	if r.code != 5 {
		t.Fatalf("exit code %d, want the command's 5", r.code)
	}
	if !exists(got) {
		t.Fatal("the orphan was not sent SIGTERM before the wrapper returned")
	}
}

func TestRunKillsOrphansThatIgnoreTermAfterTheGrace(t *testing.T) {
	dir := t.TempDir()
	ready := filepath.Join(dir, "ready")
	daemon := fmt.Sprintf(`trap "" TERM; echo $$ > %s; while :; do sleep 0.05; done`, ready)
	script := fmt.Sprintf(`setsid sh -c '%s' & i=0; while [ ! -s %s ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; exit 0`, daemon, ready)
	done := runAsync([]string{"sh", "-c", script}, 300*time.Millisecond)
	pid := pidFrom(t, ready)
	killLater(t, pid)
	r := await(t, done)
	if r.code != 0 {
		t.Fatalf("exit code %d", r.code)
	}
	if _, _, alive := procState(pid); alive {
		t.Fatal("an orphan ignoring SIGTERM outlived the wrapper (or was left a zombie)")
	}
	if r.took < 300*time.Millisecond {
		t.Fatalf("returned after %v, before the grace period", r.took)
	}
}

func TestRunAdoptsAndReapsOrphans(t *testing.T) {
	// The wrapper is a subreaper: a grandchild whose parent exits comes to
	// it (as to PID 1), and is reaped when it ends rather than left a zombie.
	dir := t.TempDir()
	ready, release, finish := filepath.Join(dir, "ready"), filepath.Join(dir, "release"), filepath.Join(dir, "finish")
	orphan := fmt.Sprintf(`echo $$ > %s; while [ ! -e %s ]; do sleep 0.02; done`, ready, release)
	script := fmt.Sprintf(`( sh -c '%s' & ); while [ ! -e %s ]; do sleep 0.02; done; exit 0`, orphan, finish)
	done := runAsync([]string{"sh", "-c", script}, 5*time.Second)
	pid := pidFrom(t, ready)
	killLater(t, pid)
	defer func() { _ = os.WriteFile(finish, nil, 0o600) }()
	waitFor(t, "the orphan to be re-parented to the wrapper", 10*time.Second, func() bool {
		_, ppid, ok := procState(pid)
		return ok && ppid == os.Getpid()
	})
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the orphan to be reaped", 10*time.Second, func() bool {
		_, _, ok := procState(pid)
		return !ok
	})
	if err := os.WriteFile(finish, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := await(t, done); r.code != 0 {
		t.Fatalf("exit code %d", r.code)
	}
}
