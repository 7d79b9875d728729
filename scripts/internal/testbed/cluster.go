package testbed

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// What a cluster of hubs needs (docs/brokers.md, cmd/lockerhub/cluster_test.go): a PostgreSQL
// database the hubs share, Mosquitto with the shipped configuration and the password and ACL
// files `lockerhub device export-acl` writes, and hubs started with an external broker.

// CreatePostgresDB creates database name on the PostgreSQL server at serverURL (its role must
// be allowed to create databases) and returns the URL of the new database.
func CreatePostgresDB(ctx context.Context, serverURL, name string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", fmt.Errorf("postgres URL: %w", err)
	}
	db, err := sql.Open("pgx", serverURL)
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// DropPostgresDB drops database name, closing the connections still open to it.
func DropPostgresDB(serverURL, name string) error {
	db, err := sql.Open("pgx", serverURL)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	return err
}

// PostgresServer returns the pid of the PostgreSQL server (the postmaster) at url, which must
// run on this machine, and its version: the postmaster is the parent of the backend that
// answers.
func PostgresServer(ctx context.Context, url string) (pid int, version string, err error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return 0, "", err
	}
	defer db.Close()
	var backend int
	if err := db.QueryRowContext(ctx, "SELECT pg_backend_pid(), current_setting('server_version')").Scan(&backend, &version); err != nil {
		return 0, "", fmt.Errorf("postgres at %s: %w", url, err)
	}
	f, err := statFields(backend)
	if err != nil {
		return 0, "", fmt.Errorf("postgres backend %d is not on this machine: %w", backend, err)
	}
	pid, err = strconv.Atoi(f[1])
	return pid, version, err
}

// statFields returns the fields of /proc/PID/stat after the command name: state is [0], the
// parent's pid [1], utime [11], stime [12], cutime [13], cstime [14].
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return nil, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	return f, nil
}

// TreeCPUSeconds is the CPU time that process pid and its children have used so far: its own,
// that of its live children, and that of the children it has reaped (cutime, cstime). A
// PostgreSQL server is such a tree: the postmaster forks a backend per connection and a few
// workers, and reaps them. Grandchildren are not counted (PostgreSQL has none). Sampled twice,
// the difference is what the tree used in between, children that came and went included.
func TreeCPUSeconds(pid int) (float64, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	ticks := 0.0
	for _, i := range []int{11, 12, 13, 14} {
		v, _ := strconv.ParseFloat(f[i], 64)
		ticks += v
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	parent := strconv.Itoa(pid)
	for _, p := range procs {
		child, err := strconv.Atoi(filepath.Base(p))
		if err != nil {
			continue
		}
		cf, err := statFields(child)
		if err != nil || cf[1] != parent {
			continue // gone meanwhile, or not a child
		}
		u, _ := strconv.ParseFloat(cf[11], 64)
		s, _ := strconv.ParseFloat(cf[12], 64)
		ticks += u + s
	}
	return ticks / 100, nil // USER_HZ is 100 on Linux
}

// MosquittoConf returns the configuration of a cluster's Mosquitto: the shipped file (path
// configs/mosquitto/lockerhub.conf) with its listener, password and ACL files, persistence
// directory and logging replaced by what this run uses, dir holding the persistence file.
// StartMosquittoConf adds the listener.
func MosquittoConf(shipped, passwd, acl, dir string) (string, error) {
	text, err := os.ReadFile(shipped)
	if err != nil {
		return "", err
	}
	var conf []string
	for line := range strings.Lines(string(text)) {
		switch strings.Fields(line + " #")[0] {
		case "listener", "password_file", "acl_file", "persistence_location", "log_dest", "log_type":
			continue
		}
		conf = append(conf, strings.TrimRight(line, "\n"))
	}
	conf = append(conf, "password_file "+passwd, "acl_file "+acl, "persistence_location "+dir+"/",
		"log_dest stderr", "log_type error", "log_type warning", "log_type notice")
	return strings.Join(conf, "\n") + "\n", nil
}

// StartMosquittoConf runs Mosquitto on a free loopback port with conf (configuration lines,
// no listener) in dir. Started as root, Mosquitto would become the mosquitto user, who cannot
// read the run's files: it then stays root.
func StartMosquittoConf(ctx context.Context, bin, dir, conf string) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	text := fmt.Sprintf("listener %d 127.0.0.1\n%s", port, conf)
	if os.Geteuid() == 0 {
		text += "user root\n"
	}
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "-c", path)
	return Start(ctx, "mosquitto", cmd, filepath.Join(dir, "mosquitto.log"), fmt.Sprintf("127.0.0.1:%d", port), "")
}

// ExportACL writes Mosquitto's password and ACL files into dir (mosquitto.passwd,
// mosquitto.acl) with `lockerhub device export-acl`: the registry's devices, as env's store
// holds them, and the hub users of hubs (name to password), whose entries mosquitto_passwd
// makes first.
func ExportACL(ctx context.Context, bin string, env []string, dir string, hubs map[string]string) (passwd, acl string, err error) {
	hubsFile := filepath.Join(dir, "hubs.passwd")
	args := []string{"export-acl", "--password-file", filepath.Join(dir, "mosquitto.passwd"), "--acl-file", filepath.Join(dir, "mosquitto.acl"),
		"--hub-password-file", hubsFile}
	first := true
	for name, password := range hubs {
		pa := []string{"-b", hubsFile, name, password}
		if first {
			pa = append([]string{"-c"}, pa...)
			first = false
		}
		if out, err := exec.CommandContext(ctx, "mosquitto_passwd", pa...).CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("mosquitto_passwd %s: %w: %s", name, err, strings.TrimSpace(string(out)))
		}
		args = append(args, "--hub-user", name)
	}
	cmd := exec.CommandContext(ctx, bin, append([]string{"device"}, args...)...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("device export-acl: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return filepath.Join(dir, "mosquitto.passwd"), filepath.Join(dir, "mosquitto.acl"), nil
}

// StartClusterHub starts `lockerhub serve` with env (which names the external broker and the
// shared store), serving HTTP on a free port, and waits until it is ready: connected to the
// broker and subscribed.
func StartClusterHub(ctx context.Context, bin, name, dir string, env []string) (*Server, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", port)
	env = append(env, "LOCKERHUB_HTTP_ADDR="+httpAddr) // the last of a repeated variable wins
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = env
	s, err := Start(ctx, name, cmd, filepath.Join(dir, name+".log"), "", httpAddr)
	if err != nil {
		return nil, err
	}
	s.Env = env
	return s, nil
}

// MetricWith scrapes the hub's /metrics and sums the series of name whose labels include
// every one of labels, such as lockerhub_external_messages_received_total with
// subscription="shared" over all channels.
func MetricWith(httpAddr, name string, labels map[string]string) (float64, error) {
	e, err := Scrape(scrapeClient, httpAddr)
	if err != nil {
		return 0, err
	}
	return e.With(name, labels), nil
}

// LoadAverage is the machine's load average over 1, 5 and 15 minutes (/proc/loadavg): other
// work on the cores the measured processes share.
func LoadAverage() [3]float64 {
	var l [3]float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscan(string(b), &l[0], &l[1], &l[2])
	}
	return l
}

// MachineCPUSeconds is the CPU time all cores have spent busy so far (/proc/stat: user, nice,
// system, irq, softirq and steal; not idle or iowait), over every process and the kernel: less
// what the measured processes used, it is what the rest of the machine took from them.
func MachineCPUSeconds() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	ticks := 0.0
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system idle iowait irq softirq steal
		v, _ := strconv.ParseFloat(f[i], 64)
		ticks += v
	}
	return ticks / 100, nil // USER_HZ
}
