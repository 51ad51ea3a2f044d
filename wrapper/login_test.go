package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fakeJWT(t *testing.T, claims map[string]any) string {
	t.Helper()
	b, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(b) + ".c2lnbmF0dXJl"
}

func TestIdentityOfReadsBoundLegacyAndSubClaims(t *testing.T) {
	bound := fakeJWT(t, map[string]any{
		"aud":           []string{"https://kubernetes.default.svc"},
		"sub":           "system:serviceaccount:payments:payment-api",
		"kubernetes.io": map[string]any{"namespace": "payments", "serviceaccount": map[string]any{"name": "payment-api"}},
	})
	if id := identityOf(bound, "/nonexistent/token"); id.String() != "payments/payment-api" || len(id.Audiences) != 1 {
		t.Fatalf("bound token: %+v", id)
	}
	legacy := fakeJWT(t, map[string]any{
		"aud":                                    "vault",
		"kubernetes.io/serviceaccount/namespace": "trading",
		"kubernetes.io/serviceaccount/service-account.name": "order-router",
	})
	if id := identityOf(legacy, ""); id.String() != "trading/order-router" || id.Audiences[0] != "vault" {
		t.Fatalf("legacy token: %+v", id)
	}
	sub := fakeJWT(t, map[string]any{"sub": "system:serviceaccount:ns1:sa1"})
	if id := identityOf(sub, ""); id.String() != "ns1/sa1" {
		t.Fatalf("sub only: %+v", id)
	}
	// Not a JWT: the namespace file Kubernetes mounts beside the token.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "namespace"), []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if id := identityOf("opaque", filepath.Join(dir, "token")); id.String() != "from-file/?" {
		t.Fatalf("namespace file: %+v", id)
	}
	// Claims are printed: control characters in them must not forge lines.
	evil := fakeJWT(t, map[string]any{"kubernetes.io": map[string]any{"namespace": "a\nb", "serviceaccount": map[string]any{"name": "c\x1b[2Jd"}}})
	if id := identityOf(evil, ""); strings.ContainsAny(id.String(), "\n\x1b") {
		t.Fatalf("unsanitised claims: %q", id.String())
	}
}

func TestSanitizeReasonRemovesTokensAndControlCharacters(t *testing.T) {
	jwt := fakeJWT(t, map[string]any{"sub": "x"})
	got := sanitizeReason("bad jwt "+jwt+" and "+jwt[:40]+"\nnext line hvs.CAESIabcdefghijklmnopqrstuvwxyz0123 \x07end", jwt)
	for _, leak := range []string{jwt, jwt[:30], "hvs.CAESI", "\n", "\x07"} {
		if strings.Contains(got, leak) {
			t.Fatalf("%q still holds %q", got, leak)
		}
	}
	if !strings.Contains(got, "bad jwt [token]") || !strings.Contains(got, "next line") || !strings.HasSuffix(got, "end") {
		t.Fatalf("lost vault's words: %q", got)
	}
	long := sanitizeReason(strings.Repeat("x", 1000), "")
	if n := len([]rune(long)); n != 301 || !strings.HasSuffix(long, "…") {
		t.Fatalf("not truncated to 300 runes: %d", n)
	}
}

func TestLoginRefusedGivesVaultsReasonAndAHintPerCase(t *testing.T) {
	c := &Config{Role: "payments-role", MountPath: "auth/kubernetes"}
	id := saIdentity{Namespace: "payments", Name: "payment-api", Audiences: []string{"api"}}
	cases := []struct {
		status int
		reason string
		hint   string
	}{
		{400, "invalid role name \"payments-role\"", "run `cloudtaser source apply-plan`"},
		{403, "service account name not authorized", "bound_service_account_names"},
		{403, "namespace not authorized", "bound_service_account_namespaces"},
		{403, "invalid audience (aud) claim: audience claim does not match any expected audience", "audience (api)"},
		{404, "no handler for route \"auth/kube/login\". route entry not found.", "no Kubernetes auth method is enabled at auth/kubernetes"},
		{403, "permission denied", "no Kubernetes auth method is enabled at auth/kubernetes (check the auth mount path"},
		{403, "lookup failed: service account unauthorized; this could mean it has been deleted or recreated with a new token", "TokenReview"},
		{400, "error validating claims: claim \"sub\" does not match any associated bound claim values", "bound_claims sub"},
		{400, "error validating token: failed to verify signature using any of the keys", "rotated its signing keys"},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		msg := loginRefused(c, tc.status, tc.reason, id).Error()
		for _, want := range []string{tc.reason, `role "payments-role"`, "at auth/kubernetes", "service account payments/payment-api", tc.hint} {
			if !strings.Contains(msg, want) {
				t.Errorf("%q: %q lacks %q", tc.reason, msg, want)
			}
		}
		hint := loginHint(tc.status, tc.reason, c, id)
		if seen[hint] {
			t.Errorf("%q: same hint as another case: %q", tc.reason, hint)
		}
		seen[hint] = true
	}
}

func TestReachHintNamesTheCause(t *testing.T) {
	for cause, want := range map[string]string{
		"connect: connection refused":                        "nothing listens",
		"x509: certificate signed by unknown authority":      "VAULT_CACERT",
		"lookup vault.invalid on 10.0.0.10:53: no such host": "does not resolve",
		"i/o timeout": "network policies",
	} {
		if got := reachHint(cause); !strings.Contains(got, want) {
			t.Errorf("%q: %q lacks %q", cause, got, want)
		}
	}
}

func TestVaultErrorsUnwrapsMultiErrors(t *testing.T) {
	for body, want := range map[string]string{
		`{"errors":["1 error occurred:\n\t* permission denied\n\n"]}`: "permission denied",
		`{"errors":["2 errors occurred:\n\t* a\n\t* b\n\n", "c"]}`:    "a; b; c",
		`{"errors":["invalid role name \"x\""]}`:                      `invalid role name "x"`,
		`not json`:                                                    "",
	} {
		if got := vaultErrors([]byte(body)); got != want {
			t.Errorf("%s: got %q, want %q", body, got, want)
		}
	}
}
