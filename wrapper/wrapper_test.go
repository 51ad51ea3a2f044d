package main

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseEnvMap(t *testing.T) {
	got, err := ParseEnvMap("secret/data/a/db:password=DB_PASS, kv/prod/data/x:user.name=USER")
	if err != nil {
		t.Fatal(err)
	}
	want := []Mapping{
		{Path: "secret/data/a/db", Field: "password", Env: "DB_PASS"},
		{Path: "kv/prod/data/x", Field: "user.name", Env: "USER"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	for _, bad := range []string{"secret/data/a:f", "nodata:f=E", "secret/data/a:f=1X", "secret/data/a=E"} {
		if _, err := ParseEnvMap(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	base := map[string]string{
		"VAULT_ADDR":         "https://vault:8200/",
		"VAULT_AUTH_ROLE":    "payments-role",
		"CLOUDTASER_ENV_MAP": "secret/data/p/db:password=DB_PASS",
	}
	c, err := LoadConfig(env(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "https://vault:8200" || c.MountPath != "auth/kubernetes" || c.AuthMethod != "kubernetes" {
		t.Fatalf("defaults: %+v", c)
	}
	if !reflect.DeepEqual(c.Paths, []string{"secret/data/p/db"}) {
		t.Fatalf("paths from env map: %v", c.Paths)
	}
	for key, val := range map[string]string{
		"VAULT_ADDR":         "vault:8200",
		"VAULT_AUTH_ROLE":    "",
		"VAULT_AUTH_METHOD":  "ldap",
		"CLOUDTASER_ENV_MAP": "",
	} {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		m[key] = val
		if _, err := LoadConfig(env(m)); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s=%q: want an error naming it, got %v", key, val, err)
		}
	}
}

func TestChildEnvDropsVaultAndCloudtaserVariables(t *testing.T) {
	got := ChildEnv(
		[]string{"PATH=/bin", "VAULT_ADDR=x", "VAULT_TOKEN=t", "CLOUDTASER_ENV_MAP=m", "DB_PASS=old", "HOME=/"},
		map[string]string{"DB_PASS": "new"},
	)
	sort.Strings(got)
	want := []string{"DB_PASS=new", "HOME=/", "PATH=/bin"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
}

func TestRunReturnsExitCodeAndForwardsSignals(t *testing.T) {
	if code := Run("/bin/sh", []string{"sh", "-c", "exit 7"}, os.Environ()); code != 7 {
		t.Fatalf("exit code %d, want 7", code)
	}
	// The child traps TERM and exits 42; the signal reaches it through Run.
	// SIGTERM goes out only once the trap is set (the child says so in a
	// file): a signal sent earlier would end the shell with 143 instead.
	ready := filepath.Join(t.TempDir(), "ready")
	done := make(chan int)
	go func() {
		done <- Run("/bin/sh", []string{"sh", "-c", "trap 'exit 42' TERM; touch " + ready + "; while :; do sleep 0.05; done"}, os.Environ())
	}()
	waitFor(t, "the child to set its trap", 10*time.Second, func() bool { return exists(ready) })
	_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case code := <-done:
		if code != 42 {
			t.Fatalf("exit code %d, want 42", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("child did not get SIGTERM")
	}
	if code := Run("/bin/sh", []string{"sh", "-c", "kill -9 $$"}, os.Environ()); code != 128+9 {
		t.Fatalf("killed child: exit code %d, want 137", code)
	}
}

func TestStageEnvDropsSettingsAndWhatVaultProvides(t *testing.T) {
	c := &Config{EnvMap: []Mapping{{Path: "secret/data/a", Field: "password", Env: "DB_PASS"}}}
	got := StageEnv([]string{"PATH=/bin", "VAULT_TOKEN=t", "CLOUDTASER_ENV_MAP=m", "DB_PASS=native", "DB_HOST=db"}, c)
	sort.Strings(got)
	want := []string{"DB_HOST=db", "PATH=/bin"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v", got)
	}
}
