package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// logf writes one line to stderr, where the container runtime collects it.
var logf = func(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "cloudtaser-wrapper: "+format+"\n", args...)
}

// saIdentity is who the service-account token says the pod is. Read from the
// token's claims without verifying them: it only names the account in
// messages; vault does the verifying.
type saIdentity struct {
	Namespace string
	Name      string
	Audiences []string
}

func (id saIdentity) String() string {
	ns, name := id.Namespace, id.Name
	if ns == "" {
		ns = "?"
	}
	if name == "" {
		name = "?"
	}
	return ns + "/" + name
}

// audiences is the "aud" claim: a string or a list of strings.
type audiences []string

func (a *audiences) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*a = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*a = many
	return nil
}

// identityOf reads namespace, service account and audiences from the JWT's
// payload (bound tokens: "kubernetes.io"; legacy secret-based tokens: flat
// claims; "sub" as a last resort), then the namespace file that Kubernetes
// mounts next to the token.
func identityOf(jwt, tokenFile string) saIdentity {
	var id saIdentity
	if parts := strings.Split(jwt, "."); len(parts) == 3 {
		if payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "=")); err == nil {
			var c struct {
				Sub string    `json:"sub"`
				Aud audiences `json:"aud"`
				K8s struct {
					Namespace      string `json:"namespace"`
					ServiceAccount struct {
						Name string `json:"name"`
					} `json:"serviceaccount"`
				} `json:"kubernetes.io"`
				LegacyNamespace string `json:"kubernetes.io/serviceaccount/namespace"`
				LegacyName      string `json:"kubernetes.io/serviceaccount/service-account.name"`
			}
			if json.Unmarshal(payload, &c) == nil {
				id = saIdentity{Namespace: c.K8s.Namespace, Name: c.K8s.ServiceAccount.Name, Audiences: c.Aud}
				if id.Namespace == "" {
					id.Namespace, id.Name = c.LegacyNamespace, c.LegacyName
				}
				if sub := strings.Split(c.Sub, ":"); id.Name == "" && len(sub) == 4 && sub[0] == "system" && sub[1] == "serviceaccount" {
					id.Namespace, id.Name = sub[2], sub[3]
				}
			}
		}
	}
	if id.Namespace == "" {
		if b, err := os.ReadFile(filepath.Join(filepath.Dir(tokenFile), "namespace")); err == nil {
			id.Namespace = strings.TrimSpace(string(b))
		}
	}
	id.Namespace, id.Name = printable(id.Namespace, 253), printable(id.Name, 253)
	for i, a := range id.Audiences {
		id.Audiences[i] = printable(a, 200)
	}
	return id
}

var (
	jwtLike   = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`)
	tokenLike = regexp.MustCompile(`\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9_-]{20,}`)
)

// sanitizeReason makes vault's error text safe for a log line: no token
// (the one sent, or anything shaped like a JWT or a vault token), no control
// characters, one line, bounded length.
func sanitizeReason(reason, secret string) string {
	if secret != "" {
		reason = strings.ReplaceAll(reason, secret, "[token]")
	}
	reason = jwtLike.ReplaceAllString(reason, "[token]")
	reason = tokenLike.ReplaceAllString(reason, "[token]")
	return printable(reason, 300)
}

// printable keeps printable characters only, on one line, at most max runes.
func printable(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max]) + "…"
	}
	return s
}

// loginRefused is the one line a refused Kubernetes login produces: vault's
// reason, what was asked for, and what to check for that reason.
func loginRefused(c *Config, status int, reason string, id saIdentity) error {
	what := fmt.Sprintf("%d", status)
	if reason != "" {
		what += ": " + reason
	}
	where := c.MountPath
	if c.Namespace != "" {
		where += " in vault namespace " + c.Namespace
	}
	return fmt.Errorf("vault refused the login (%s) for role %q at %s as service account %s: %s",
		what, c.Role, where, id, loginHint(status, reason, c, id))
}

// loginHint matches vault's reason (the Kubernetes auth method's messages)
// to what usually causes it.
func loginHint(status int, reason string, c *Config, id saIdentity) string {
	r := strings.ToLower(reason)
	switch {
	case strings.Contains(r, "invalid role name") || strings.Contains(r, "role not found"):
		return fmt.Sprintf("vault has no role %q at %s; run `cloudtaser source apply-plan` for this workload's plan against this vault, or correct the role name (cloudtaser.io/vault-role, VAULT_AUTH_ROLE)", c.Role, c.MountPath)
	case strings.Contains(r, "service account name not authorized"):
		return fmt.Sprintf("the role does not bind service account %q; add it to the role's bound_service_account_names (apply-plan binds the serviceAccount the plan names, so check it matches the pod's serviceAccountName)", id.Name)
	case strings.Contains(r, "namespace not authorized"):
		return fmt.Sprintf("the role does not bind namespace %q; add it to the role's bound_service_account_namespaces", id.Namespace)
	case strings.Contains(r, "audience") || strings.Contains(r, "aud claim"):
		aud := "none"
		if len(id.Audiences) > 0 {
			aud = strings.Join(id.Audiences, ",")
		}
		return fmt.Sprintf("the token's audience (%s) is not the one the role expects; set the role's audience to the token's, or project a token with the role's audience", aud)
	// A JWT auth mount (`cloudtaser source register --method jwt`) words its refusals its own way.
	case strings.Contains(r, "bound claim"):
		return fmt.Sprintf("the JWT role does not bind service account %s/%s (its bound_claims sub); run `cloudtaser source apply-plan` with --auth-path for this mount", id.Namespace, id.Name)
	case strings.Contains(r, "signature") || strings.Contains(r, "issuer"):
		return fmt.Sprintf("the token was not signed by the keys vault holds for %s: a mount registered for another cluster, or the cluster rotated its signing keys (write the fingerprint file again and run `cloudtaser source register --method jwt` again)", c.MountPath)
	case status == 404 || strings.Contains(r, "no handler for route") || strings.Contains(r, "unsupported path"):
		return fmt.Sprintf("no Kubernetes auth method is enabled at %s; check the auth mount path (VAULT_AUTH_MOUNT_PATH)", c.MountPath)
	case strings.Contains(r, "expired"):
		return "the service-account token has expired; the kubelet refreshes projected tokens, so check the token file the wrapper reads"
	case r == "permission denied":
		// What vault answers both for a path no auth method is mounted at
		// (an unauthenticated request) and for a failed TokenReview.
		return fmt.Sprintf("either no Kubernetes auth method is enabled at %s (check the auth mount path, VAULT_AUTH_MOUNT_PATH), or vault could not confirm the token with the Kubernetes API (check the auth method's kubernetes_host and CA, and that its reviewer may create TokenReviews: system:auth-delegator)", c.MountPath)
	case strings.Contains(r, "permission denied") || strings.Contains(r, "lookup failed") || strings.Contains(r, "unauthorized"):
		return "vault could not confirm the token with the Kubernetes API (TokenReview); check the auth method's kubernetes_host and CA, and that its reviewer may create TokenReviews (system:auth-delegator)"
	}
	return "check the role's bound namespaces and service accounts"
}

// reachHint says what to check when vault could not be reached at all.
func reachHint(cause string) string {
	c := strings.ToLower(cause)
	switch {
	case strings.Contains(c, "connection refused"):
		return ": nothing listens there; check the vault address (VAULT_ADDR) and that vault runs"
	case strings.Contains(c, "x509") || strings.Contains(c, "certificate") || strings.Contains(c, "tls"):
		return ": the TLS handshake failed; check VAULT_CACERT holds the CA that signed vault's certificate and that the address's host name is in it"
	case strings.Contains(c, "no such host") || strings.Contains(c, "server misbehaving"):
		return ": the host name does not resolve; check the vault address (VAULT_ADDR)"
	case strings.Contains(c, "timeout") || strings.Contains(c, "deadline") || strings.Contains(c, "no route"):
		return ": no answer; check network policies and egress from the pod to vault"
	}
	return ""
}

// revokeHint says why revoking may have failed.
func revokeHint(err error) string {
	var ae *apiError
	if errors.As(err, &ae) && ae.status == 403 {
		return "; the role's token policies must allow update on auth/token/revoke-self (the default policy does: is token_no_default_policy set?)"
	}
	return ""
}
