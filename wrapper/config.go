package main

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Config is everything the wrapper reads from its environment. None of it is
// secret except the token for VAULT_AUTH_METHOD=token, which is never printed.
type Config struct {
	Addr        string
	AuthMethod  string // "kubernetes" or "token"
	Role        string
	MountPath   string // e.g. "auth/kubernetes"
	Token       string
	SkipVerify  bool
	CACert      string
	Namespace   string
	Paths       []string
	EnvMap      []Mapping
	Files       []FileMapping
	SATokenFile string
	// AllowInsecure permits a plain-http Addr (CLOUDTASER_ALLOW_INSECURE_VAULT).
	AllowInsecure bool
	// StartedFile is where to note that the app has started (the startup
	// probe's marker, CLOUDTASER_STARTED_FILE); empty for none.
	StartedFile string
	// RetryWindow is how long the login and each read keep retrying what
	// may pass (an election, a restarting node, a standby catching up)
	// before the wrapper fails closed (CLOUDTASER_VAULT_RETRY).
	RetryWindow time.Duration
}

// DefaultRetryWindow covers a Raft leader election (a few seconds) with room
// to spare, yet ends a pod whose vault is really gone quickly enough for the
// kubelet's own restart back-off to take over.
const DefaultRetryWindow = 10 * time.Second

// MaxRetryWindow keeps a typo ("10m" for "10s") from holding a pod in
// start-up for long.
const MaxRetryWindow = 5 * time.Minute

// DefaultSATokenFile is where the webhook mounts the projected token whose
// audience is vault's (see the webhook's TOKEN_PATH).
const DefaultSATokenFile = "/var/run/secrets/cloudtaser.io/serviceaccount/token"

// Mapping says which field of which KV v2 path becomes which env var.
type Mapping struct {
	Path  string
	Field string
	Env   string
}

var (
	envName   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	fieldName = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
	kv2Path   = regexp.MustCompile(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*?/data/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$`)
)

// ParseEnvMap reads "<vault-path>:<field>=<ENV_VAR>,…". Paths and fields
// cannot contain ':' or '=', so the last of each separates the parts.
func ParseEnvMap(v string) ([]Mapping, error) {
	var out []Mapping
	if strings.TrimSpace(v) == "" {
		return out, nil
	}
	for _, raw := range strings.Split(v, ",") {
		e := strings.TrimSpace(raw)
		eq := strings.LastIndex(e, "=")
		if eq < 0 {
			return nil, fmt.Errorf("CLOUDTASER_ENV_MAP entry %q has no '='", e)
		}
		colon := strings.LastIndex(e[:eq], ":")
		if colon < 0 {
			return nil, fmt.Errorf("CLOUDTASER_ENV_MAP entry %q has no ':' between path and field", e)
		}
		m := Mapping{Path: e[:colon], Field: e[colon+1 : eq], Env: e[eq+1:]}
		if !kv2Path.MatchString(m.Path) {
			return nil, fmt.Errorf("CLOUDTASER_ENV_MAP entry %q: %q is not a KV v2 data path", e, m.Path)
		}
		if !fieldName.MatchString(m.Field) {
			return nil, fmt.Errorf("CLOUDTASER_ENV_MAP entry %q: bad field name", e)
		}
		if !envName.MatchString(m.Env) {
			return nil, fmt.Errorf("CLOUDTASER_ENV_MAP entry %q: %q is not a valid env var name", e, m.Env)
		}
		out = append(out, m)
	}
	return out, nil
}

func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "t", "true", "y", "yes":
		return true
	}
	return false
}

// LoadConfig validates the environment; every error names the variable.
func LoadConfig(getenv func(string) string) (*Config, error) {
	c := &Config{
		Addr:          strings.TrimRight(getenv("VAULT_ADDR"), "/"),
		AuthMethod:    getenv("VAULT_AUTH_METHOD"),
		Role:          getenv("VAULT_AUTH_ROLE"),
		MountPath:     strings.Trim(getenv("VAULT_AUTH_MOUNT_PATH"), "/"),
		Token:         getenv("VAULT_TOKEN"),
		SkipVerify:    truthy(getenv("VAULT_SKIP_VERIFY")),
		CACert:        getenv("VAULT_CACERT"),
		Namespace:     getenv("VAULT_NAMESPACE"),
		SATokenFile:   getenv("CLOUDTASER_SA_TOKEN_FILE"),
		AllowInsecure: truthy(getenv("CLOUDTASER_ALLOW_INSECURE_VAULT")),
		StartedFile:   getenv("CLOUDTASER_STARTED_FILE"),
	}
	c.RetryWindow = DefaultRetryWindow
	if v := strings.TrimSpace(getenv("CLOUDTASER_VAULT_RETRY")); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > MaxRetryWindow {
			return nil, fmt.Errorf("CLOUDTASER_VAULT_RETRY must be a duration between 0s and %s, such as 10s, not %q", MaxRetryWindow, v)
		}
		c.RetryWindow = d
	}
	if c.AuthMethod == "" {
		c.AuthMethod = "kubernetes"
	}
	if c.MountPath == "" {
		c.MountPath = "auth/kubernetes"
	}
	if c.SATokenFile == "" {
		// The token the webhook projects for vault's audience. Never the pod's
		// Kubernetes-API token by default: vault, or anyone on the path,
		// could replay that one against the API server.
		c.SATokenFile = DefaultSATokenFile
	}
	scheme := strings.ToLower(c.Addr[:strings.Index(c.Addr+"://", "://")])
	if scheme != "http" && scheme != "https" {
		return nil, fmt.Errorf("VAULT_ADDR must be an http(s) URL")
	}
	if scheme == "http" && !c.AllowInsecure {
		return nil, fmt.Errorf("VAULT_ADDR is plain http: the login token and the secrets would cross the network unencrypted; use https, or set CLOUDTASER_ALLOW_INSECURE_VAULT=true (annotation cloudtaser.io/allow-insecure-vault)")
	}
	switch c.AuthMethod {
	case "kubernetes":
		if c.Role == "" {
			return nil, fmt.Errorf("VAULT_AUTH_ROLE is required for Kubernetes auth")
		}
	case "token":
		if c.Token == "" {
			return nil, fmt.Errorf("VAULT_TOKEN is required when VAULT_AUTH_METHOD=token")
		}
	default:
		return nil, fmt.Errorf("VAULT_AUTH_METHOD must be kubernetes or token, not %q", c.AuthMethod)
	}
	for _, p := range strings.Split(getenv("CLOUDTASER_SECRET_PATHS"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			if !kv2Path.MatchString(p) {
				return nil, fmt.Errorf("CLOUDTASER_SECRET_PATHS: %q is not a KV v2 data path", p)
			}
			c.Paths = append(c.Paths, p)
		}
	}
	m, err := ParseEnvMap(getenv("CLOUDTASER_ENV_MAP"))
	if err != nil {
		return nil, err
	}
	c.EnvMap = m
	files, err := ParseFileMap(getenv("CLOUDTASER_FILE_MAP"))
	if err != nil {
		return nil, err
	}
	c.Files = files
	need := make([]string, 0, len(m)+len(files))
	for _, e := range m {
		need = append(need, e.Path)
	}
	for _, f := range files {
		need = append(need, f.Path)
	}
	for _, p := range need {
		found := false
		for _, have := range c.Paths {
			found = found || have == p
		}
		if !found {
			c.Paths = append(c.Paths, p)
		}
	}
	if len(c.EnvMap) == 0 && len(c.Files) == 0 {
		return nil, fmt.Errorf("CLOUDTASER_ENV_MAP is empty: nothing to fetch")
	}
	return c, nil
}

// ChildEnv is the wrapper's environment without VAULT_* and CLOUDTASER_*,
// plus the secrets. Secrets win over variables of the same name.
func ChildEnv(base []string, secrets map[string]string) []string {
	out := withoutSettings(base, func(name string) bool {
		_, overridden := secrets[name]
		return overridden
	})
	for k, v := range secrets {
		out = append(out, k+"="+v)
	}
	return out
}

// StageEnv is the environment the wrapper re-executes itself with: no
// settings, and none of the variables the env-map provides from vault. Such
// a variable can only have come from a native Secret (an envFrom the
// workload still carries, say), and PID 1's /proc/1/environ must not show it;
// the application gets the vault value instead.
func StageEnv(base []string, c *Config) []string {
	provided := make(map[string]bool, len(c.EnvMap))
	for _, m := range c.EnvMap {
		provided[m.Env] = true
	}
	return withoutSettings(base, func(name string) bool { return provided[name] })
}

// withoutSettings drops VAULT_*, CLOUDTASER_* and the names drop accepts.
func withoutSettings(base []string, drop func(name string) bool) []string {
	out := make([]string, 0, len(base))
	for _, kv := range base {
		name := kv
		if i := strings.IndexByte(kv, '='); i >= 0 {
			name = kv[:i]
		}
		if strings.HasPrefix(name, "VAULT_") || strings.HasPrefix(name, "CLOUDTASER_") || drop(name) {
			continue
		}
		out = append(out, kv)
	}
	return out
}
