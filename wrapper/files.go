package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// FileMapping says which field of which KV v2 path the wrapper writes to
// which file, inside which volume mount, with which permission bits.
type FileMapping struct {
	Path  string
	Field string
	File  string
	Mount string
	Mode  os.FileMode
}

// An absolute, normalised path of the characters the plan allows; the same
// rule as the plan's FILE_PATH and the webhook's parser.
var filePath = regexp.MustCompile(`^(?:/(?:[A-Za-z0-9_+@-]|\.[A-Za-z0-9_.+@-]|\.\.[A-Za-z0-9_.+@-])[A-Za-z0-9_.+@-]*)+$`)
var octalMode = regexp.MustCompile(`^0?[0-7]{3}$`)

// within reports whether path is dir or lies below it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, dir+"/")
}

// ParseFileMap reads "<vault-path>:<field>=<file>;mount=<dir>;mode=<octal>,…"
// (the webhook's CLOUDTASER_FILE_MAP). Every file must be an absolute,
// normalised path strictly inside its mount, and named once.
func ParseFileMap(v string) ([]FileMapping, error) {
	var out []FileMapping
	if strings.TrimSpace(v) == "" {
		return out, nil
	}
	seen := map[string]bool{}
	for _, raw := range strings.Split(v, ",") {
		e := strings.TrimSpace(raw)
		parts := strings.Split(e, ";")
		head := parts[0]
		eq := strings.LastIndex(head, "=")
		if eq < 0 {
			return nil, fmt.Errorf("CLOUDTASER_FILE_MAP entry %q has no '='", e)
		}
		colon := strings.LastIndex(head[:eq], ":")
		if colon < 0 {
			return nil, fmt.Errorf("CLOUDTASER_FILE_MAP entry %q has no ':' between path and field", e)
		}
		m := FileMapping{Path: head[:colon], Field: head[colon+1 : eq], File: head[eq+1:]}
		opts := map[string]string{}
		for _, o := range parts[1:] {
			k, val, ok := strings.Cut(o, "=")
			if _, dup := opts[k]; !ok || dup || (k != "mount" && k != "mode") {
				return nil, fmt.Errorf("CLOUDTASER_FILE_MAP entry %q: bad option %q", e, o)
			}
			opts[k] = val
		}
		m.Mount = opts["mount"]
		if !kv2Path.MatchString(m.Path) {
			return nil, fmt.Errorf("CLOUDTASER_FILE_MAP entry %q: %q is not a KV v2 data path", e, m.Path)
		}
		if !fieldName.MatchString(m.Field) {
			return nil, fmt.Errorf("CLOUDTASER_FILE_MAP entry %q: bad field name", e)
		}
		for _, p := range []string{m.File, m.Mount} {
			if !filePath.MatchString(p) || filepath.Clean(p) != p {
				return nil, fmt.Errorf("CLOUDTASER_FILE_MAP entry %q: %q is not an absolute, normalised path", e, p)
			}
		}
		if m.File == m.Mount || !within(m.File, m.Mount) {
			return nil, fmt.Errorf("CLOUDTASER_FILE_MAP entry %q: %s is not inside its mount %s", e, m.File, m.Mount)
		}
		mode := opts["mode"]
		if mode == "" {
			mode = "0400"
		}
		if !octalMode.MatchString(mode) {
			return nil, fmt.Errorf("CLOUDTASER_FILE_MAP entry %q: mode %q is not octal", e, mode)
		}
		bits, _ := strconv.ParseUint(mode, 8, 32)
		m.Mode = os.FileMode(bits)
		if seen[m.File] {
			return nil, fmt.Errorf("CLOUDTASER_FILE_MAP names %s twice", m.File)
		}
		seen[m.File] = true
		out = append(out, m)
	}
	return out, nil
}

// WriteFiles writes each file before the application starts: directories
// below the mount are created as needed, the content goes to a temporary
// file in the same directory, which gets its mode, is synced and renamed
// over the target, so a reader (or a restarted container, whose emptyDir
// survives) never sees a partial file. The files belong to the user the
// wrapper runs as: the container's. The mount must already exist (the
// webhook's emptyDir); nothing is written outside it, and no symbolic link
// is followed below it. Errors name paths, never contents.
func WriteFiles(files []FileMapping, contents map[string][]byte) error {
	for _, f := range files {
		data, ok := contents[f.File]
		if !ok {
			return fmt.Errorf("no content for %s", f.File)
		}
		if err := writeOne(f, data); err != nil {
			return fmt.Errorf("cannot write %s: %v", f.File, err)
		}
	}
	return nil
}

func writeOne(f FileMapping, data []byte) error {
	if filepath.Clean(f.File) != f.File || filepath.Clean(f.Mount) != f.Mount ||
		!filepath.IsAbs(f.File) || f.File == f.Mount || !within(f.File, f.Mount) {
		return fmt.Errorf("not a normalised path inside the mount %s", f.Mount)
	}
	st, err := os.Lstat(f.Mount)
	if err != nil {
		return fmt.Errorf("its mount %s is missing: %v", f.Mount, errors.Unwrap(err))
	}
	if !st.IsDir() {
		return fmt.Errorf("its mount %s is not a directory", f.Mount)
	}
	dir := f.Mount
	rel := strings.TrimPrefix(filepath.Dir(f.File), f.Mount)
	for _, seg := range strings.Split(strings.Trim(rel, "/"), "/") {
		if seg == "" {
			continue
		}
		dir = filepath.Join(dir, seg)
		st, err := os.Lstat(dir)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := os.Mkdir(dir, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case !st.IsDir():
			return fmt.Errorf("%s is not a directory", dir)
		}
	}
	if st, err := os.Lstat(f.File); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("%s exists and is not a regular file", f.File)
	}
	tmp, err := os.CreateTemp(dir, ".cloudtaser-*")
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	// fchmod on the open file: the mode holds even when it denies writing.
	if err := tmp.Chmod(f.Mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f.File); err != nil {
		return err
	}
	done = true
	// The rename itself reaches the directory only once the directory is synced.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
