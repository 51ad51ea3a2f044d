// cloudtaser-wrapper runs as a container's entrypoint (PID 1 in most pods):
// it logs in to OpenBao/Vault with the pod's service-account token, reads
// the mapped KV v2 fields, and starts the original command with those values
// in the child's environment only. Its own environment, the one
// /proc/1/environ shows, never holds a secret.
//
// Usage:
//
//	cloudtaser-wrapper COMMAND [ARG...]     fetch secrets, then run COMMAND
//	cloudtaser-wrapper --install PATH       copy this binary to PATH (init container)
//	cloudtaser-wrapper --started FILE       exit 0 once the wrapper has started the app (startup probe)
//	cloudtaser-wrapper --version
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

var version = "dev"

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "cloudtaser-wrapper: "+format+"\n", args...)
	os.Exit(1)
}

func install(dest string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(self)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dest + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o555)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dest)
}

func main() {
	args := os.Args[1:]
	if len(args) == 0 {
		fail("usage: cloudtaser-wrapper COMMAND [ARG...] | --install PATH | --version")
	}
	switch args[0] {
	case "--version":
		fmt.Println(version)
		return
	case "--install":
		if len(args) != 2 {
			fail("usage: cloudtaser-wrapper --install PATH")
		}
		if err := install(args[1]); err != nil {
			fail("install to %s: %v", args[1], err)
		}
		return
	case "--started":
		if len(args) != 2 {
			fail("usage: cloudtaser-wrapper --started FILE")
		}
		// A probe's output shows in the pod's events.
		if why := checkStarted(args[1]); why != "" {
			fmt.Println(why)
			os.Exit(1)
		}
		return
	}

	var cfg *Config
	if args[0] == stage2Flag {
		// Re-executed: settings come from the pipe, the environment is clean.
		c, rest, err := readStage2(args)
		if err != nil {
			fail("%v", err)
		}
		cfg, args = c, rest
		harden()
	} else {
		c, err := LoadConfig(os.Getenv)
		if err != nil {
			fail("%v", err)
		}
		// Start again without VAULT_*, CLOUDTASER_* and the variables vault
		// will provide: /proc/1/environ then shows neither the settings, nor
		// (for token auth) the vault token, nor a native Secret's value.
		if err := reexecClean(c, args); err != nil {
			fail("%v", err)
		}
		cfg = c // reexecClean only returns when it must not re-exec
		harden()
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		fail("command %q not found", args[0])
	}
	vault, err := NewVault(cfg)
	if err != nil {
		fail("%v", err)
	}
	// Room for the login's and every read's retry window, never less than a minute.
	ctx, cancel := context.WithTimeout(context.Background(), max(60*time.Second, 3*cfg.RetryWindow+30*time.Second))
	secrets, files, err := Fetch(ctx, vault)
	cancel()
	if err != nil {
		// Fail closed: the application never starts without its secrets.
		fail("not starting %s: %v", args[0], err)
	}
	if err := WriteFiles(cfg.Files, files); err != nil {
		fail("not starting %s: %v", args[0], err)
	}
	if cfg.StartedFile != "" {
		afterStart = func() {
			if err := markStarted(cfg.StartedFile); err != nil {
				logf("warning: cannot note that the app started (%v): the startup probe will fail and the kubelet restart the container", err)
			}
		}
	}
	os.Exit(Run(path, args, ChildEnv(os.Environ(), secrets)))
}

const stage2Flag = "--cloudtaser-stage2"

// reexecClean replaces this process with itself, passing the parsed settings
// through an inherited pipe (fd 3) and an environment without VAULT_* and
// CLOUDTASER_*. It returns only when CLOUDTASER_NO_REEXEC is set (tests).
func reexecClean(c *Config, args []string) error {
	if truthy(os.Getenv("CLOUDTASER_NO_REEXEC")) {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find own executable: %v", err)
	}
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	if len(data) > 60000 {
		return fmt.Errorf("settings too large (%d bytes)", len(data))
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	w.Close()
	// fd 3 without close-on-exec, so the new image inherits it.
	if fd := int(r.Fd()); fd != 3 {
		if err := syscall.Dup3(fd, 3, 0); err != nil {
			return fmt.Errorf("cannot pass settings: %v", err)
		}
	} else if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, 3, syscall.F_SETFD, 0); errno != 0 {
		return fmt.Errorf("cannot pass settings: %v", errno)
	}
	argv := append([]string{os.Args[0], stage2Flag}, args...)
	return syscall.Exec(self, argv, StageEnv(os.Environ(), c))
}

func readStage2(args []string) (*Config, []string, error) {
	f := os.NewFile(3, "cloudtaser-settings")
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read settings: %v", err)
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, nil, fmt.Errorf("cannot read settings: %v", err)
	}
	if len(args) < 2 {
		return nil, nil, fmt.Errorf("no command after %s", stage2Flag)
	}
	return &c, args[1:], nil
}
