// Package testtb tests test helpers: Run hands a helper a testing.TB that records whether the
// helper failed or skipped its test, and with what message, instead of ending the real test.
package testtb

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// Recorder records what a helper did to its test: failed, skipped, and the message.
type Recorder struct {
	testing.TB // the real test, for everything not overridden
	mu         sync.Mutex
	DidFail    bool
	DidSkip    bool
	Message    string
	cleanups   []func()
}

func (f *Recorder) Helper() {}
func (f *Recorder) record(failed, skipped bool, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.DidFail = f.DidFail || failed
	f.DidSkip = f.DidSkip || skipped
	f.Message += fmt.Sprintln(args...)
}
func (f *Recorder) Errorf(format string, args ...any) {
	f.record(true, false, fmt.Sprintf(format, args...))
}
func (f *Recorder) Error(args ...any) { f.record(true, false, args...) }
func (f *Recorder) Fatalf(format string, args ...any) {
	f.record(true, false, fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (f *Recorder) Fatal(args ...any) { f.record(true, false, args...); runtime.Goexit() }
func (f *Recorder) FailNow()          { f.record(true, false); runtime.Goexit() }
func (f *Recorder) Skipf(format string, args ...any) {
	f.record(false, true, fmt.Sprintf(format, args...))
	runtime.Goexit()
}
func (f *Recorder) Skip(args ...any)  { f.record(false, true, args...); runtime.Goexit() }
func (f *Recorder) SkipNow()          { f.record(false, true); runtime.Goexit() }
func (f *Recorder) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

// Run calls fn with a Recorder in its own goroutine (Fatal and Skip end it with Goexit, as the
// testing package does), then runs the cleanups fn registered.
func Run(t *testing.T, fn func(testing.TB)) *Recorder {
	f := &Recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	return f
}
