package main

import (
	"strings"
	"testing"
	"time"
)

func TestPlainHTTPVaultNeedsExplicitOptIn(t *testing.T) {
	base := map[string]string{
		"VAULT_ADDR":         "http://vault.eu.example.com:8200",
		"VAULT_AUTH_ROLE":    "payments-role",
		"CLOUDTASER_ENV_MAP": "secret/data/p/db:password=DB_PASS",
	}
	_, err := LoadConfig(env(base))
	if err == nil || !strings.Contains(err.Error(), "CLOUDTASER_ALLOW_INSECURE_VAULT") || !strings.Contains(err.Error(), "plain http") {
		t.Fatalf("http without opt-in: want a refusal naming CLOUDTASER_ALLOW_INSECURE_VAULT, got %v", err)
	}
	for _, no := range []string{"", "false", "0", "maybe"} {
		base["CLOUDTASER_ALLOW_INSECURE_VAULT"] = no
		if _, err := LoadConfig(env(base)); err == nil {
			t.Errorf("CLOUDTASER_ALLOW_INSECURE_VAULT=%q: want a refusal", no)
		}
	}
	base["CLOUDTASER_ALLOW_INSECURE_VAULT"] = "true"
	c, err := LoadConfig(env(base))
	if err != nil {
		t.Fatalf("http with opt-in: %v", err)
	}
	if !c.AllowInsecure {
		t.Fatal("AllowInsecure not recorded")
	}
	// Upper-case scheme is still plain http.
	base["CLOUDTASER_ALLOW_INSECURE_VAULT"] = ""
	base["VAULT_ADDR"] = "HTTP://vault:8200"
	if _, err := LoadConfig(env(base)); err == nil {
		t.Fatal("HTTP:// without opt-in: want a refusal")
	}
	base["VAULT_ADDR"] = "https://vault:8200"
	if _, err := LoadConfig(env(base)); err != nil {
		t.Fatalf("https needs no opt-in: %v", err)
	}
}

func TestDefaultTokenIsTheProjectedVaultToken(t *testing.T) {
	c, err := LoadConfig(env(map[string]string{
		"VAULT_ADDR":         "https://vault:8200",
		"VAULT_AUTH_ROLE":    "payments-role",
		"CLOUDTASER_ENV_MAP": "secret/data/p/db:password=DB_PASS",
	}))
	if err != nil {
		t.Fatal(err)
	}
	// Never the pod's Kubernetes-API token: that one is valid against the API server.
	if c.SATokenFile != "/var/run/secrets/cloudtaser.io/serviceaccount/token" {
		t.Fatalf("default token file %q", c.SATokenFile)
	}
}

func TestRetryWindowDefaultsToTenSecondsAndIsBounded(t *testing.T) {
	base := map[string]string{
		"VAULT_ADDR":         "https://vault:8200",
		"VAULT_AUTH_ROLE":    "r",
		"CLOUDTASER_ENV_MAP": "secret/data/a:b=B",
	}
	get := func(extra map[string]string) func(string) string {
		return func(k string) string {
			if v, ok := extra[k]; ok {
				return v
			}
			return base[k]
		}
	}
	c, err := LoadConfig(get(nil))
	if err != nil || c.RetryWindow != 10*time.Second {
		t.Fatalf("default: %v %v", c, err)
	}
	c, err = LoadConfig(get(map[string]string{"CLOUDTASER_VAULT_RETRY": "2500ms"}))
	if err != nil || c.RetryWindow != 2500*time.Millisecond {
		t.Fatalf("2500ms: %v %v", c, err)
	}
	for _, bad := range []string{"ten", "-1s", "10m"} {
		if _, err := LoadConfig(get(map[string]string{"CLOUDTASER_VAULT_RETRY": bad})); err == nil || !strings.Contains(err.Error(), "CLOUDTASER_VAULT_RETRY") {
			t.Errorf("%q: want a CLOUDTASER_VAULT_RETRY error, got %v", bad, err)
		}
	}
}
