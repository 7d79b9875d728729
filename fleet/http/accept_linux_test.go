package http_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	lhhttp "github.com/lockerhub/lockerhub/fleet/http"
	"github.com/lockerhub/lockerhub/internal/syncbuf"
)

// Running out of file descriptors does not stop the server: it serves again once descriptors
// are free. The test lowers the process's descriptor limit, so it runs in a process of its own.
func TestAcceptSurvivesDescriptorExhaustion(t *testing.T) {
	const child = "LOCKERHUB_TEST_EXHAUST_FDS"
	if os.Getenv(child) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptSurvivesDescriptorExhaustion$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), child+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestAcceptSurvivesDescriptorExhaustion") {
			t.Fatalf("in its own process: %v\n%s", err, out)
		}
		return
	}

	var logs syncbuf.Buffer
	s := lhhttp.NewServer(prometheus.NewRegistry(), nil, lhhttp.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := s.Open("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	addr := s.Addr().String()

	var limit syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &limit); err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	low := limit
	low.Cur = uint64(len(fds) + 32)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	// Silent connections, each a descriptor here and one in the server, until none is left.
	var conns []net.Conn
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "too many open files") {
		if time.Now().After(deadline) {
			t.Fatalf("the server never ran out of descriptors (%d connections); log:\n%s", len(conns), logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range conns {
		c.Close()
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &limit); err != nil {
		t.Fatal(err)
	}

	// net/http retries accepting with a backoff of at most a second.
	client := &http.Client{Timeout: 2 * time.Second}
	deadline = time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not serving after descriptors were freed: %v; log:\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.Check(context.Background()); err != nil {
		t.Fatalf("check after recovering: %v", err)
	}
}
