package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// A port that refuses connections: a listener opened and closed again.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// The login keeps trying a vault that refuses connections for the retry
// window, no shorter and not much longer, then fails with one line that says
// what failed and for how long.
func TestCallRetriesForTheWindowThenGivesUpInOneLine(t *testing.T) {
	cfg := &Config{Addr: refusedAddr(t), RetryWindow: 1500 * time.Millisecond, AuthMethod: "token", Token: "t"}
	v, err := NewVault(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = v.call(context.Background(), "GET", "secret/data/a", nil, nil)
	took := time.Since(start)
	if err == nil {
		t.Fatal("want an error")
	}
	if took < time.Second || took > 4*time.Second {
		t.Errorf("gave up after %s, want about the 1.5 s window", took)
	}
	msg := err.Error()
	for _, want := range []string{"cannot reach vault at " + cfg.Addr, "connection refused", "retried for"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("more than one line: %q", msg)
	}
}

func TestCallWithoutARetryWindowTriesOnce(t *testing.T) {
	cfg := &Config{Addr: refusedAddr(t), RetryWindow: 0, AuthMethod: "token", Token: "t"}
	v, _ := NewVault(cfg)
	start := time.Now()
	if err := v.call(context.Background(), "GET", "secret/data/a", nil, nil); err == nil {
		t.Fatal("want an error")
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("took %s with no retry window", took)
	}
}
