package main

import (
	"strings"
	"testing"
)

func TestLockRefusalLocksOnlyWhenTheLimitCannotBite(t *testing.T) {
	if why := lockRefusal(8<<20, false); !strings.Contains(why, "8192 KiB") {
		t.Fatalf("8 MiB without CAP_IPC_LOCK: %q", why)
	}
	for _, ok := range []struct {
		limit uint64
		cap   bool
	}{{8 << 20, true}, {1 << 30, false}, {^uint64(0), false}} {
		if why := lockRefusal(ok.limit, ok.cap); why != "" {
			t.Errorf("%+v: refused: %s", ok, why)
		}
	}
}

func TestHasCapabilityReadsCapEff(t *testing.T) {
	status := func(capEff string) func(string) ([]byte, error) {
		return func(string) ([]byte, error) {
			return []byte("Name:\tx\nCapPrm:\t000001ffffffffff\nCapEff:\t" + capEff + "\nCapBnd:\t0\n"), nil
		}
	}
	if !hasCapability(status("0000000000004000"), capIPCLock) {
		t.Fatal("bit 14 set, not seen")
	}
	if hasCapability(status("000001ffffffbfff"), capIPCLock) {
		t.Fatal("bit 14 clear, seen")
	}
}
