package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

func TestStartedMarker(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app")
	if why := checkStarted(path); why == "" {
		t.Fatal("no marker yet, but reported started")
	}
	if err := markStarted(path); err != nil {
		t.Fatal(err)
	}
	if why := checkStarted(path); why != "" {
		t.Fatalf("marker of a live process refused: %s", why)
	}
	// A marker whose PID now names another process (an earlier run of the
	// container, PID 1 again): the start time differs.
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+" 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if why := checkStarted(path); why == "" {
		t.Fatal("stale marker reported started")
	}
	// A process that has ended.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(cmd.Process.Pid)+" 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if why := checkStarted(path); why == "" {
		t.Fatal("marker of an ended process reported started")
	}
}
