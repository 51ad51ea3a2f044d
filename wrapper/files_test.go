package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestParseFileMap(t *testing.T) {
	got, err := ParseFileMap("secret/data/a/tls:tls.key=/etc/tls/tls.key;mount=/etc/tls;mode=0440, secret/data/a/tls:ca=/etc/tls/ca/ca.crt;mount=/etc/tls;mode=644")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].File != "/etc/tls/tls.key" || got[0].Mount != "/etc/tls" || got[0].Mode != 0o440 || got[1].Mode != 0o644 || got[1].Field != "ca" {
		t.Fatalf("got %+v", got)
	}
	if m, err := ParseFileMap("secret/data/a:k=/m/k;mount=/m"); err != nil || m[0].Mode != 0o400 {
		t.Fatalf("default mode: %+v %v", m, err)
	}
	for _, bad := range []string{
		"secret/data/a:k=/m/../k;mount=/m;mode=0400",                  // ".." segment
		"secret/data/a:k=/m/./k;mount=/m;mode=0400",                   // "." segment
		"secret/data/a:k=m/k;mount=m;mode=0400",                       // relative
		"secret/data/a:k=/other/k;mount=/m;mode=0400",                 // outside the mount
		"secret/data/a:k=/m;mount=/m;mode=0400",                       // the mount itself
		"secret/data/a:k=/m/k/;mount=/m;mode=0400",                    // trailing slash
		"secret/data/a:k=/m/k;mount=/m;mode=0999",                     // not octal
		"secret/data/a:k=/m/k;mount=/m;uid=0",                         // unknown option
		"secret/data/a:k=/m/k;mount=/m,secret/data/a:j=/m/k;mount=/m", // one file twice
		"nodata:k=/m/k;mount=/m",
	} {
		if _, err := ParseFileMap(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestLoadConfigWithFilesOnly(t *testing.T) {
	c, err := LoadConfig(env(map[string]string{
		"VAULT_ADDR":          "https://vault:8200",
		"VAULT_AUTH_ROLE":     "r",
		"CLOUDTASER_FILE_MAP": "secret/data/a/tls:tls.key=/etc/tls/tls.key;mount=/etc/tls;mode=0400",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Files) != 1 || len(c.Paths) != 1 || c.Paths[0] != "secret/data/a/tls" {
		t.Fatalf("got %+v", c)
	}
}

func TestWriteFiles(t *testing.T) {
	mount := t.TempDir()
	files := []FileMapping{
		{File: mount + "/tls.key", Mount: mount, Mode: 0o400},
		{File: mount + "/conf/deep/db.yaml", Mount: mount, Mode: 0o640},
	}
	contents := map[string][]byte{files[0].File: []byte("key-1"), files[1].File: []byte("db: x\n")}
	if err := WriteFiles(files, contents); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		st, err := os.Stat(f.File)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != f.Mode {
			t.Errorf("%s: mode %o, want %o", f.File, st.Mode().Perm(), f.Mode)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if int(sys.Uid) != os.Getuid() || int(sys.Gid) != os.Getgid() {
			t.Errorf("%s: owner %d:%d, want %d:%d", f.File, sys.Uid, sys.Gid, os.Getuid(), os.Getgid())
		}
		b, _ := os.ReadFile(f.File)
		if string(b) != string(contents[f.File]) {
			t.Errorf("%s: wrong content", f.File)
		}
	}
	if st, err := os.Stat(mount + "/conf/deep"); err != nil || !st.IsDir() {
		t.Fatalf("directory not created: %v", err)
	}

	// A restarted container finds its files in the emptyDir: they are
	// replaced by rename (a new inode; a reader holding the old one keeps
	// the old content whole), read-only mode or not, with no temp file left.
	old, _ := os.Stat(files[0].File)
	held, err := os.Open(files[0].File)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	contents[files[0].File] = []byte("key-2")
	if err := WriteFiles(files, contents); err != nil {
		t.Fatal(err)
	}
	now, _ := os.Stat(files[0].File)
	if os.SameFile(old, now) {
		t.Error("rewritten in place, not renamed over")
	}
	if b, _ := os.ReadFile(files[0].File); string(b) != "key-2" {
		t.Errorf("content %q", b)
	}
	buf := make([]byte, 16)
	n, _ := held.Read(buf)
	if string(buf[:n]) != "key-1" {
		t.Errorf("the old file changed under its reader: %q", buf[:n])
	}
	entries, _ := os.ReadDir(mount)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".cloudtaser-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func TestWriteFilesRefuses(t *testing.T) {
	mount := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(mount, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(mount, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := map[string]FileMapping{
		"dot-dot":       {File: mount + "/../escape", Mount: mount, Mode: 0o400},
		"outside":       {File: outside + "/x", Mount: mount, Mode: 0o400},
		"the mount":     {File: mount, Mount: mount, Mode: 0o400},
		"relative":      {File: "x/y", Mount: "x", Mode: 0o400},
		"symlink":       {File: mount + "/link/x", Mount: mount, Mode: 0o400},
		"directory":     {File: mount + "/dir", Mount: mount, Mode: 0o400},
		"missing mount": {File: mount + "/nope/x", Mount: mount + "/nope", Mode: 0o400},
	}
	for name, f := range cases {
		err := WriteFiles([]FileMapping{f}, map[string][]byte{f.File: []byte("SECRET-VALUE")})
		if err == nil {
			t.Errorf("%s: written", name)
			continue
		}
		if strings.Contains(err.Error(), "SECRET-VALUE") {
			t.Errorf("%s: the error shows the value", name)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("wrote outside the mount: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(mount), "escape")); err == nil {
		t.Error("wrote through ..")
	}
}
