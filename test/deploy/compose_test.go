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

func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
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
