// Package deploy checks the deployment files that cannot be run on the project's machines (no
// Docker engine): docker-compose.yml is loaded with the compose-spec reference loader.
package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

func loadCompose(t *testing.T, files ...string) *types.Project {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		files = []string{"docker-compose.yml"}
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, filepath.Join(root, f))
	}
	opts, err := cli.NewProjectOptions(paths,
		cli.WithWorkingDirectory(root), cli.WithResolvedPaths(true), cli.WithInterpolation(true),
		cli.WithEnv([]string{"OPENAI_API_KEY=sk-test"}))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(t.Context())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

func TestComposeStack(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"postgres", "redis", "migrate", "envoy-config", "extproc", "ratelimit", "envoy"} {
		if _, err := p.GetService(name); err != nil {
			t.Errorf("service %s: %v", name, err)
		}
	}
	envoy, err := p.GetService("envoy")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(envoy.Image, "envoyproxy/envoy:") {
		t.Errorf("envoy must run the official image, got %q", envoy.Image)
	}
	if len(envoy.Ports) != 1 || envoy.Ports[0].Published != "8080" || envoy.Ports[0].Target != 8080 {
		t.Errorf("envoy ports = %+v, want 8080:8080", envoy.Ports)
	}
	if got := envoy.DependsOn["envoy-config"].Condition; got != types.ServiceConditionCompletedSuccessfully {
		t.Errorf("envoy must wait for its rendered config, condition %q", got)
	}

	extproc, _ := p.GetService("extproc")
	if extproc.Build == nil {
		t.Error("extproc must be built from the repository's Dockerfile")
	}
	if got := extproc.DependsOn["migrate"].Condition; got != types.ServiceConditionCompletedSuccessfully {
		t.Errorf("extproc must start after migrations, condition %q", got)
	}
	if v := extproc.Environment["OPENAI_API_KEY"]; v == nil || *v != "sk-test" {
		t.Errorf("provider credentials must come from the environment, got %v", v)
	}
	cmd := strings.Join(extproc.Command, " ")
	if !strings.Contains(cmd, "extproc") || !strings.Contains(cmd, "50051") {
		t.Errorf("extproc command = %q", cmd)
	}
	rls, _ := p.GetService("ratelimit")
	if got := rls.DependsOn["redis"].Condition; got != types.ServiceConditionHealthy {
		t.Errorf("ratelimit must wait for a healthy Redis, condition %q", got)
	}
	cfg, _ := p.GetService("envoy-config")
	rendered := strings.Join(cfg.Command, " ")
	for _, want := range []string{"--extproc extproc:50051", "--ratelimit ratelimit:50052", "--management extproc:8090"} {
		if !strings.Contains(rendered, want) {
			t.Errorf("envoy-config command %q lacks %q", rendered, want)
		}
	}
	if len(extproc.Volumes) == 0 || extproc.Volumes[0].Target != "/var/spool/tollgate" || !slices.Contains(extproc.Command, "/var/spool/tollgate") {
		t.Errorf("the settlement spool must live on a volume: %+v %q", extproc.Volumes, cmd)
	}
	for _, name := range []string{"postgres", "redis"} {
		s, _ := p.GetService(name)
		if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 {
			t.Errorf("%s needs a healthcheck so dependants wait for it", name)
		}
	}
	// The catalog the containers read must exist in the image's config directory.
	catalog := strings.TrimPrefix(*extproc.Environment["TOLLGATE_CONFIG"], "/etc/tollgate/")
	if _, err := os.Stat(filepath.Join("../../config", catalog)); err != nil {
		t.Errorf("TOLLGATE_CONFIG names %s, which config/ does not have: %v", catalog, err)
	}
	if !slices.Contains(extproc.Command, "--addr") {
		t.Errorf("extproc must listen beyond loopback inside its container: %q", cmd)
	}
}

// TestComposeTrustBoundary: only Envoy publishes a port; extproc and ratelimit (and Postgres and
// Redis) sit on internal networks that Envoy's listener network is not, and every listener
// beyond loopback requires the peer secret, generated once and shared through a volume.
func TestComposeTrustBoundary(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		if len(s.Ports) > 0 && name != "envoy" {
			t.Errorf("service %s publishes %+v: only Envoy may", name, s.Ports)
		}
	}
	for name, want := range map[string]bool{"edge": false, "sidecar": true, "data": true} {
		n, ok := p.Networks[name]
		if !ok || n.Internal != want {
			t.Errorf("network %s: present %v, internal %v; want internal %v", name, ok, n.Internal, want)
		}
	}
	networks := func(name string) []string {
		s, err := p.GetService(name)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for n := range s.Networks {
			out = append(out, n)
		}
		slices.Sort(out)
		return out
	}
	for name, want := range map[string][]string{
		"envoy":     {"edge", "sidecar"},
		"extproc":   {"data", "sidecar"},
		"ratelimit": {"data", "sidecar"},
		"postgres":  {"data"},
		"redis":     {"data"},
		"migrate":   {"data"},
	} {
		if got := networks(name); !slices.Equal(got, want) {
			t.Errorf("service %s on networks %v, want %v", name, got, want)
		}
	}
	for _, name := range []string{"peer-secret", "envoy-config"} {
		if s, _ := p.GetService(name); s.NetworkMode != "none" {
			t.Errorf("%s needs no network, has %q", name, s.NetworkMode)
		}
	}

	gen, _ := p.GetService("peer-secret")
	genCmd := strings.Join(gen.Command, " ")
	if !strings.HasPrefix(genCmd, "peer-secret -o /secrets/") {
		t.Fatalf("peer-secret command %q", genCmd)
	}
	secretPath := gen.Command[2]
	for _, name := range []string{"envoy-config", "extproc", "ratelimit"} {
		s, _ := p.GetService(name)
		cmd := strings.Join(s.Command, " ")
		if !strings.Contains(cmd, "--peer-secret-file "+secretPath) {
			t.Errorf("%s command %q lacks --peer-secret-file %s", name, cmd, secretPath)
		}
		if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
			return v.Source == gen.Volumes[0].Source && v.Target == gen.Volumes[0].Target && v.ReadOnly
		}) {
			t.Errorf("%s must mount the secret volume read-only: %+v", name, s.Volumes)
		}
		if s.DependsOn["peer-secret"].Condition != types.ServiceConditionCompletedSuccessfully {
			t.Errorf("%s must wait for the secret", name)
		}
		if strings.Contains(cmd, "--fail-open=true") || strings.Contains(cmd, "failure-mode-deny=false") {
			t.Errorf("%s fails open: %q", name, cmd)
		}
	}

	// The bootstrap holds the secret: envoy-config writes it mode 0600 as Envoy's user (101 in
	// the official image), into a directory the tollgate image gives that user.
	if cfg, _ := p.GetService("envoy-config"); cfg.User != "101" {
		t.Errorf("envoy-config runs as %q, want Envoy's user 101", cfg.User)
	}
	if df, err := os.ReadFile("../../Dockerfile"); err != nil || !strings.Contains(string(df), "--chown=101:101 /out/envoy /envoy") {
		t.Errorf("the Dockerfile must give /envoy to Envoy's user (%v)", err)
	}

	// The e2e override publishes Postgres, on loopback only, and nothing else.
	e2e := loadCompose(t, "docker-compose.yml", "docker-compose.e2e.yml")
	for name, s := range e2e.Services {
		switch {
		case name == "postgres":
			if len(s.Ports) != 1 || s.Ports[0].HostIP != "127.0.0.1" {
				t.Errorf("e2e postgres ports %+v, want one on 127.0.0.1", s.Ports)
			}
		case name != "envoy" && len(s.Ports) > 0:
			t.Errorf("e2e override: %s publishes %+v", name, s.Ports)
		}
	}
}
