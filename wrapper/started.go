package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// The started marker: once the wrapper has started the app it writes its own
// PID and start time to CLOUDTASER_STARTED_FILE, and the startup probe the
// webhook adds (`cloudtaser-wrapper --started FILE`) passes only while that
// process is alive. Until then (the login to vault is still being retried)
// the pod is not Ready. The start time tells a marker left by an earlier run
// of the container (the file lives in a pod-lifetime emptyDir, and the new
// wrapper is PID 1 again) from the current one.

// processStart is the start time of a process (field 22 of /proc/PID/stat,
// in clock ticks since boot); it is shown even for a non-dumpable process.
func processStart(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), so field 22 is f[19].
	if len(f) < 20 {
		return "", fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	return f[19], nil
}

// markStarted writes the marker for this process, atomically.
func markStarted(path string) error {
	pid := os.Getpid()
	start, err := processStart(pid)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d %s\n", pid, start)), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// checkStarted says why the app is not started yet, or "" when it is.
func checkStarted(path string) string {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return "the wrapper has not started the app yet (still fetching its secrets from vault?)"
	}
	if err != nil {
		return fmt.Sprintf("cannot read %s: %v", path, err)
	}
	parts := strings.Fields(string(b))
	pid, err := strconv.Atoi(firstOr(parts, ""))
	if err != nil || len(parts) != 2 {
		return fmt.Sprintf("%s is not a started marker", path)
	}
	start, err := processStart(pid)
	if err != nil || start != parts[1] {
		return "the marker is from an earlier run; the wrapper has not started the app yet"
	}
	return ""
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}
