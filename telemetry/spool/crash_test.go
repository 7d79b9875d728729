package spool

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// crashDirEnv makes the test binary the child of TestKill9KeepsAcknowledgedRecords: it appends
// to the spool in that directory until it is killed.
const crashDirEnv = "SPOOL_TEST_CRASH_DIR"

// TestKill9KeepsAcknowledgedRecords runs a child process that appends from several goroutines
// and prints every record as soon as its Append returns, kills it with SIGKILL in mid-stream,
// and checks that every printed record is read back after Open, where Append said it was.
func TestKill9KeepsAcknowledgedRecords(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		appendUntilKilled(dir)
	}
	const killAfter = 500
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9KeepsAcknowledgedRecords$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]Position{}
	for sc := bufio.NewScanner(out); sc.Scan(); {
		var payload string
		var pos Position
		if _, err := fmt.Sscanf(sc.Text(), "acked %s %d %d", &payload, &pos.Segment, &pos.Offset); err != nil {
			continue // the test framework's own output
		}
		acked[payload] = pos
		if len(acked) == killAfter {
			cmd.Process.Kill()
		}
	}
	err = cmd.Wait() // after reading everything: lines already in the pipe are acked too
	printed := len(acked)
	if len(acked) < killAfter {
		t.Fatalf("child stopped after %d records (%v): %s", len(acked), err, stderr.Bytes())
	}

	s := openSpool(t, dir, Options{})
	recs := drain(t, s)
	next := map[string]int{} // per goroutine, the next record number
	for _, r := range recs {
		g, n, _ := strings.Cut(string(r.Payload), "-")
		var i int
		fmt.Sscanf(n, "%d", &i)
		if i != next[g] {
			t.Fatalf("read %s, want %s-%06d: order within a goroutine broken", r.Payload, g, next[g])
		}
		next[g]++
		if pos, ok := acked[string(r.Payload)]; ok && pos != r.Pos {
			t.Errorf("%s read at %v, acked at %v", r.Payload, r.Pos, pos)
		}
		delete(acked, string(r.Payload))
	}
	if len(acked) > 0 {
		t.Fatalf("%d acknowledged records lost, such as %v", len(acked), acked)
	}
	st := s.Stats()
	t.Logf("%d records acked before the kill, %d read back (written, not yet acked: %d); torn tail cut: %d bytes",
		printed, len(recs), len(recs)-printed, st.Truncated)
}

// appendUntilKilled is the child: 8 goroutines append numbered records with real fsyncs,
// to small segments so that the kill may land on a rollover too, and print each one once
// Append has returned.
func appendUntilKilled(dir string) {
	s, err := Open(dir, Options{SegmentBytes: 4 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	for g := range 8 {
		go func() {
			for i := 0; ; i++ {
				payload := fmt.Sprintf("g%d-%06d", g, i)
				pos, err := s.Append(context.Background(), []byte(payload))
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Printf("acked %s %d %d\n", payload, pos.Segment, pos.Offset)
				mu.Unlock()
			}
		}()
	}
	select {}
}
