package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"time"
)

// Vault is a minimal client: log in, read KV v2 data, revoke the token.
type Vault struct {
	cfg     *Config
	http    *http.Client
	token   string
	backoff time.Duration
	// index is the X-Vault-Index of the login's answer: sent with the reads,
	// a standby that has not yet replicated the new token answers 429
	// (retried) instead of refusing a token it does not know yet.
	index string
	// maxBackoff caps the pause between attempts.
	maxBackoff time.Duration
}

func NewVault(cfg *Config) (*Vault, error) {
	tlsCfg := &tls.Config{InsecureSkipVerify: cfg.SkipVerify} //nolint:gosec // opt-in via VAULT_SKIP_VERIFY
	if cfg.CACert != "" {
		pem, err := os.ReadFile(cfg.CACert)
		if err != nil {
			return nil, fmt.Errorf("VAULT_CACERT: cannot read %s", cfg.CACert)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("VAULT_CACERT: %s holds no PEM certificate", cfg.CACert)
		}
		tlsCfg.RootCAs = pool
	}
	return &Vault{
		cfg:        cfg,
		http:       &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg}},
		token:      cfg.Token,
		backoff:    200 * time.Millisecond,
		maxBackoff: 2 * time.Second,
	}, nil
}

type apiError struct {
	status int
	msg    string
	reason string // vault's own error text as sent: sanitise before printing
}

func (e *apiError) Error() string { return e.msg }

// call retries connection failures, 429, 5xx and a redirect to an active node
// that is gone, until cfg.RetryWindow has passed since its first attempt
// (a leader election takes seconds); then it returns the last failure, with
// how long it tried.
func (v *Vault) call(ctx context.Context, method, path string, body any, out any) error {
	var payload []byte
	if body != nil {
		payload, _ = json.Marshal(body)
	}
	start := time.Now()
	deadline := start.Add(v.cfg.RetryWindow)
	var last error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			pause := v.backoff << (attempt - 1)
			if pause > v.maxBackoff || pause <= 0 {
				pause = v.maxBackoff
			}
			if time.Now().Add(pause).After(deadline) {
				return retried(last, time.Since(start))
			}
			select {
			case <-ctx.Done():
				return last
			case <-time.After(pause):
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, v.cfg.Addr+"/v1/"+path, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		if v.token != "" {
			req.Header.Set("X-Vault-Token", v.token)
		}
		if v.cfg.Namespace != "" {
			req.Header.Set("X-Vault-Namespace", v.cfg.Namespace)
		}
		if v.index != "" {
			req.Header.Set("X-Vault-Index", v.index)
		}
		res, err := v.http.Do(req)
		if err != nil {
			if ctx.Err() != nil && last != nil {
				return last
			}
			// Never include the URL's query or any header: just what failed.
			last = &reachError{addr: v.cfg.Addr, cause: rootCause(err)}
			continue
		}
		data, _ := io.ReadAll(io.LimitReader(res.Body, 4<<20))
		res.Body.Close()
		if res.StatusCode == 429 || res.StatusCode >= 500 || res.StatusCode == 307 || res.StatusCode == 308 {
			msg := fmt.Sprintf("vault %s %s: %d", method, path, res.StatusCode)
			if reason := sanitizeReason(vaultErrors(data), v.token); reason != "" {
				msg += " " + reason
			}
			last = &apiError{status: res.StatusCode, msg: msg}
			continue
		}
		if res.StatusCode >= 300 {
			raw := vaultErrors(data)
			msg := fmt.Sprintf("vault %s %s: %d", method, path, res.StatusCode)
			if reason := sanitizeReason(raw, v.token); reason != "" {
				msg += " " + reason
			}
			return &apiError{res.StatusCode, msg, raw}
		}
		if idx := res.Header.Get("X-Vault-Index"); idx != "" && method != "GET" {
			v.index = idx
		}
		if out != nil && len(data) > 0 {
			if err := json.Unmarshal(data, out); err != nil {
				return fmt.Errorf("vault %s %s: unreadable response", method, path)
			}
		}
		return nil
	}
}

// reachError is a vault that could not be reached at all.
type reachError struct {
	addr, cause string
	tried       time.Duration
}

func (e *reachError) Error() string {
	tried := ""
	if e.tried > 0 {
		tried = fmt.Sprintf(", retried for %s", e.tried.Round(100*time.Millisecond))
	}
	return fmt.Sprintf("cannot reach vault at %s (%s%s)%s", e.addr, e.cause, tried, reachHint(e.cause))
}

// retried says how long the last failure was retried, in the one line the
// wrapper logs when it gives up.
func retried(last error, tried time.Duration) error {
	var re *reachError
	if errors.As(last, &re) {
		re.tried = tried
		return re
	}
	var ae *apiError
	if errors.As(last, &ae) {
		ae.msg = fmt.Sprintf("%s (retried for %s: no active vault node answered)", ae.msg, tried.Round(100*time.Millisecond))
		return ae
	}
	return last
}

func rootCause(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			s := err.Error()
			if i := strings.LastIndex(s, ": "); i >= 0 {
				return s[i+2:]
			}
			return s
		}
		err = next
	}
}

func vaultErrors(data []byte) string {
	var body struct {
		Errors []string `json:"errors"`
	}
	if json.Unmarshal(data, &body) != nil || len(body.Errors) == 0 {
		return ""
	}
	var out []string
	for _, e := range body.Errors {
		out = append(out, unwrapMultiError(e)...)
	}
	return strings.Join(out, "; ")
}

var multiErrorHead = regexp.MustCompile(`^\d+ errors? occurred:\s*`)

// unwrapMultiError turns vault's "1 error occurred:\n\t* permission
// denied\n\n" into its items ("permission denied").
func unwrapMultiError(e string) []string {
	head := multiErrorHead.FindString(e)
	if head == "" {
		return []string{e}
	}
	var items []string
	for _, item := range strings.Split(e[len(head):], "\n") {
		if item = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(item), "*")); item != "" {
			items = append(items, item)
		}
	}
	if len(items) == 0 {
		return []string{e}
	}
	return items
}

// Login exchanges the service-account token for a vault token.
func (v *Vault) Login(ctx context.Context) error {
	if v.cfg.AuthMethod == "token" {
		return nil
	}
	jwt, err := os.ReadFile(v.cfg.SATokenFile)
	if err != nil {
		return fmt.Errorf("cannot read the service-account token at %s", v.cfg.SATokenFile)
	}
	var res struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	token := strings.TrimSpace(string(jwt))
	body := map[string]string{"role": v.cfg.Role, "jwt": token}
	if err := v.call(ctx, "POST", v.cfg.MountPath+"/login", body, &res); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.status >= 400 && ae.status < 500 {
			// The reason is vault's own text; a JWT it might quote is cut out.
			reason := sanitizeReason(ae.reason, token)
			return loginRefused(v.cfg, ae.status, reason, identityOf(token, v.cfg.SATokenFile))
		}
		return err
	}
	if res.Auth.ClientToken == "" {
		return fmt.Errorf("vault login for role %q returned no token", v.cfg.Role)
	}
	v.token = res.Auth.ClientToken
	return nil
}

// notFoundGrace bounds how long a 404 is re-read (replication lag on a
// standby is milliseconds to a few seconds); notFoundPause is the pause between.
const (
	notFoundGrace = 3 * time.Second
	notFoundPause = 250 * time.Millisecond
)

// Read returns the latest data of a KV v2 path (the API path, with /data/).
func (v *Vault) Read(ctx context.Context, path string) (map[string]any, error) {
	var res struct {
		Data struct {
			Data map[string]any `json:"data"`
		} `json:"data"`
	}
	// A standby answers reads from its replica, which right after a leader
	// change may not yet hold the newest writes: a 404 is asked again for a
	// short while before it counts as missing.
	missingFor := min(v.cfg.RetryWindow, notFoundGrace)
	start := time.Now()
	var err error
	for {
		err = v.call(ctx, "GET", path, nil, &res)
		var ae *apiError
		if err == nil || !errors.As(err, &ae) || ae.status != 404 || time.Since(start)+notFoundPause > missingFor {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(notFoundPause):
		}
		if ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.status == 404 {
			return nil, fmt.Errorf("%s does not exist in vault (or its latest version is deleted)", path)
		}
		if errors.As(err, &ae) && ae.status == 403 {
			return nil, fmt.Errorf("the vault token may not read %s (403)", path)
		}
		return nil, err
	}
	if res.Data.Data == nil {
		return nil, fmt.Errorf("%s holds no data", path)
	}
	return res.Data.Data, nil
}

// Revoke ends the login token: the child never needs it.
func (v *Vault) Revoke(ctx context.Context) error {
	if v.cfg.AuthMethod == "token" || v.token == "" {
		return nil
	}
	err := v.call(ctx, "POST", "auth/token/revoke-self", nil, nil)
	v.token = ""
	return err
}

// Fetch logs in and resolves every mapping: the env vars, and the files'
// contents by file path. Any missing path or field is an error.
func Fetch(ctx context.Context, v *Vault) (map[string]string, map[string][]byte, error) {
	if err := v.Login(ctx); err != nil {
		return nil, nil, err
	}
	defer func() {
		// Revoke even when the reads failed or ran out of time.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		if err := v.Revoke(rctx); err != nil {
			// The app still starts (it has its secrets), but a token left
			// valid must not go unnoticed.
			logf("warning: could not revoke the vault login token: %v; it stays valid until its TTL ends%s", err, revokeHint(err))
		}
	}()
	data := map[string]map[string]any{}
	for _, p := range v.cfg.Paths {
		d, err := v.Read(ctx, p)
		if err != nil {
			return nil, nil, err
		}
		data[p] = d
	}
	out := map[string]string{}
	for _, m := range v.cfg.EnvMap {
		val, ok := data[m.Path][m.Field]
		if !ok {
			return nil, nil, fmt.Errorf("%s has no field %q (for %s)", m.Path, m.Field, m.Env)
		}
		out[m.Env] = text(val)
	}
	files := map[string][]byte{}
	for _, f := range v.cfg.Files {
		val, ok := data[f.Path][f.Field]
		if !ok {
			return nil, nil, fmt.Errorf("%s has no field %q (for %s)", f.Path, f.Field, f.File)
		}
		files[f.File] = []byte(text(val))
	}
	return out, files, nil
}

// text is a KV value as the app gets it: strings as they are, anything else as JSON.
func text(val any) string {
	if s, ok := val.(string); ok {
		return s
	}
	b, _ := json.Marshal(val)
	return string(b)
}
