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
//	cloudtaser-wrapper --version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
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
	}

	harden()
	cfg, err := LoadConfig(os.Getenv)
	if err != nil {
		fail("%v", err)
	}
	path, err := exec.LookPath(args[0])
	if err != nil {
		fail("command %q not found", args[0])
	}
	vault, err := NewVault(cfg)
	if err != nil {
		fail("%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	secrets, err := Fetch(ctx, vault)
	cancel()
	if err != nil {
		// Fail closed: the application never starts without its secrets.
		fail("not starting %s: %v", args[0], err)
	}
	os.Exit(Run(path, args, ChildEnv(os.Environ(), secrets)))
}
