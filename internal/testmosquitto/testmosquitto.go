// Package testmosquitto runs Debian's Mosquitto 2 for tests: an independent broker to run the
// hub's external-broker mode and its generated configuration against. The broker listens on a
// free 127.0.0.1 port and stops when the test ends. Without the mosquitto binary the test is
// skipped, or failed when the environment variable CI is set (scripts/test-deps.sh installs
// it).
package testmosquitto

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Broker is a running Mosquitto.
type Broker struct {
	Addr string // host:port
	Dir  string // holds mosquitto.conf, the log and the persistence file
	t    testing.TB
	bin  string
	conf string
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

// Binary returns the mosquitto binary, skipping or failing t without one.
func Binary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/bin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	msg := "mosquitto not installed (scripts/test-deps.sh installs Debian's)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Client returns the path of one of Debian's mosquitto client tools (mosquitto_pub,
// mosquitto_sub), skipping or failing t without it as Binary does.
func Client(t testing.TB, tool string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err == nil {
		return path
	}
	msg := tool + " not installed (scripts/test-deps.sh installs Debian's mosquitto-clients)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Start runs Mosquitto with a listener on a free port followed by conf, Mosquitto
// configuration lines such as "allow_anonymous true". A "%DIR%" in conf names Dir.
func Start(t testing.TB, conf string) *Broker {
	t.Helper()
	b := &Broker{t: t, bin: Binary(t), Dir: t.TempDir()}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.Addr = l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(b.Addr)
	b.conf = filepath.Join(b.Dir, "mosquitto.conf")
	text := fmt.Sprintf("listener %s 127.0.0.1\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n%s\n", port, strings.ReplaceAll(conf, "%DIR%", b.Dir))
	if os.Geteuid() == 0 {
		// Started as root, Mosquitto becomes the mosquitto user, who cannot read the test's
		// private directory.
		text += "user root\n"
	}
	if err := os.WriteFile(b.conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(b.Stop)
	return b
}

// StartConfig runs Mosquitto with the configuration file at path, such as the shipped
// configs/mosquitto/lockerhub.conf, as deployed: only its listener, persistence location and
// logging become the test's, and the lines whose first word is a key of replace become that
// key and its value. A key the file does not have fails the test: the file changed.
func StartConfig(t testing.TB, path string, replace map[string]string) *Broker {
	t.Helper()
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var conf []string
	seen := map[string]bool{}
	for line := range strings.Lines(string(file)) {
		line = strings.TrimRight(line, "\n")
		key, _, _ := strings.Cut(line, " ")
		switch {
		case key == "listener" || key == "log_dest" || key == "log_type":
			continue // Start's
		case key == "persistence_location":
			line = "persistence_location %DIR%/"
		case replace[key] != "":
			line, seen[key] = key+" "+replace[key], true
		}
		conf = append(conf, line)
	}
	for key := range replace {
		if !seen[key] {
			t.Fatalf("%s has no %s line", path, key)
		}
	}
	return Start(t, strings.Join(conf, "\n"))
}

func (b *Broker) start() {
	b.t.Helper()
	b.log = &bytes.Buffer{}
	b.cmd = exec.Command(b.bin, "-c", b.conf)
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.Addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			b.Stop()
			b.t.Fatalf("mosquitto did not listen on %s: %v\n%s", b.Addr, err, b.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// PID is the process ID of the running Mosquitto.
func (b *Broker) PID() int { return b.cmd.Process.Pid }

// Reload makes Mosquitto read its password and ACL files again (SIGHUP).
func (b *Broker) Reload() {
	b.t.Helper()
	if err := b.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		b.t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // Mosquitto reloads on its next loop iteration
}

// Restart stops Mosquitto gracefully (saving persistence, if configured) and starts it again
// on the same port.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	b.start()
}

// Stop stops Mosquitto; the log goes to the test's output if it failed.
func (b *Broker) Stop() {
	if b.cmd == nil || b.cmd.Process == nil || b.cmd.ProcessState != nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-done
	}
	if b.t.Failed() {
		b.t.Logf("mosquitto log:\n%s", b.log)
	}
}
