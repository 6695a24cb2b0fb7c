// The outage test stops and starts a private Postgres, so it needs the gateway's processes on
// this machine; `-tags external` leaves it out when the suite runs against a compose stack.

//go:build !external

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgCluster is a private Postgres server for one test, which the test may stop and start at
// will without disturbing the shared server other tests use.
type pgCluster struct {
	bin  string // directory of initdb and pg_ctl
	dir  string // holds data/, the socket and the log
	port string
	DSN  string
}

// startPostgres initialises and starts a private cluster (trust auth, loopback only) and
// removes it when the test ends. Postgres refuses to run as root, so under root its commands
// run as the postgres user, which is given the cluster's directory.
func startPostgres(t *testing.T) *pgCluster {
	t.Helper()
	initdbs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(initdbs) == 0 {
		t.Fatal("no /usr/lib/postgresql/*/bin/initdb: install the postgresql server package")
	}
	slices.Sort(initdbs) // the newest major version last
	// os.MkdirTemp rather than t.TempDir: the postgres user must be able to reach the directory,
	// and t.TempDir's parent is private to this user.
	dir, err := os.MkdirTemp("", "tollgate-pg-")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(freeAddr(t))
	c := &pgCluster{bin: filepath.Dir(initdbs[len(initdbs)-1]), dir: dir, port: port,
		DSN: "postgres://postgres@127.0.0.1:" + port + "/postgres?sslmode=disable"}
	t.Cleanup(func() {
		_ = c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop")
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs a postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.run("initdb", "-D", c.data(), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"); err != nil {
		t.Fatal(err)
	}
	c.Start(t)
	return c
}

func (c *pgCluster) data() string { return filepath.Join(c.dir, "data") }

// Start starts the server and waits until it accepts connections.
func (c *pgCluster) Start(t *testing.T) {
	t.Helper()
	opts := fmt.Sprintf("-p %s -k %s -c listen_addresses=127.0.0.1 -c max_connections=50", c.port, c.dir)
	if err := c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "log"), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		t.Fatalf("%v\n%s", err, log)
	}
	poll(t, "private postgres accepting connections", 30*time.Second, func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.DSN)
		if err != nil {
			return false, err
		}
		conn.Close(ctx)
		return true, nil
	})
}

// Stop stops the server for real (fast shutdown: open connections are cut) and waits for it.
func (c *pgCluster) Stop(t *testing.T) {
	t.Helper()
	if err := c.run("pg_ctl", "-D", c.data(), "-m", "fast", "-w", "-t", "60", "stop"); err != nil {
		t.Fatal(err)
	}
}

// run runs a Postgres binary, as the postgres user when this process is root.
func (c *pgCluster) run(name string, args ...string) error {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
	}
	return nil
}
