package spool

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkAppend measures group commit: 64 goroutines, one per publishing MQTT client, append
// 300-byte records. There is no consumer, so the figures are the ingest side alone; MaxBytes
// is out of reach so that nothing waits for space.
func BenchmarkAppend(b *testing.B) {
	const appenders, recordBytes = 64, 300
	for _, bc := range []struct {
		name   string
		noSync bool
	}{{"sync", false}, {"nosync", true}} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := Open(b.TempDir(), Options{MaxBytes: 1 << 40, NoSync: bc.noSync})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			payload := bytes.Repeat([]byte("x"), recordBytes)
			var left atomic.Int64
			left.Store(int64(b.N))
			b.SetBytes(recordBytes)
			b.ResetTimer()
			var wg sync.WaitGroup
			for range appenders {
				wg.Go(func() {
					for left.Add(-1) >= 0 {
						if _, err := s.Append(context.Background(), payload); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			st := s.Stats()
			secs := b.Elapsed().Seconds()
			b.ReportMetric(float64(st.Appends)/secs, "appends/s")
			if st.Fsyncs > 0 {
				b.ReportMetric(float64(st.Fsyncs)/secs, "fsyncs/s")
				b.ReportMetric(float64(st.Appends)/float64(st.Fsyncs), "records/fsync")
			}
		})
	}
}
