package hubclient_test

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/lockerhub/lockerhub/fleet/http/hubclient"
)

func TestEventReader(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []hubclient.Event
	}{
		{"one event", "event: health\ndata: {\"a\":1}\n\n",
			[]hubclient.Event{{Name: "health", Data: `{"a":1}`}}},
		{"multi-line data joined with newlines", "event: x\ndata: one\ndata: two\ndata:\ndata:  four\n\n",
			[]hubclient.Event{{Name: "x", Data: "one\ntwo\n\n four"}}},
		{"comments and keepalives are skipped", ": keepalive\n\n: hello\nevent: door\n: between\ndata: 1\n\n: keepalive\n\n",
			[]hubclient.Event{{Name: "door", Data: "1"}}},
		{"no event name is a message", "data: plain\n\n",
			[]hubclient.Event{{Name: "message", Data: "plain"}}},
		{"an event without data is not dispatched, and its name does not leak", "event: empty\n\ndata: next\n\n",
			[]hubclient.Event{{Name: "message", Data: "next"}}},
		{"CRLF and lone CR end lines", "event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\r",
			[]hubclient.Event{{Name: "a", Data: "1"}, {Name: "b", Data: "2"}}},
		{"no space after the colon, unknown fields, retry", "event:tight\nretry: 1000\nfoo: bar\ndata:x\n\n",
			[]hubclient.Event{{Name: "tight", Data: "x"}}},
		{"a field without a colon", "data\n\n",
			[]hubclient.Event{{Name: "message", Data: ""}}},
		{"ids carry over", "id: 7\ndata: a\n\ndata: b\n\n",
			[]hubclient.Event{{Name: "message", Data: "a", ID: "7"}, {Name: "message", Data: "b", ID: "7"}}},
		{"a byte order mark opens the stream", "\uFEFFevent: bom\ndata: 1\n\n",
			[]hubclient.Event{{Name: "bom", Data: "1"}}},
		{"an event cut off at the end is dropped", "event: a\ndata: 1\n\nevent: b\ndata: 2\n",
			[]hubclient.Event{{Name: "a", Data: "1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One byte at a time as well: a live stream arrives in pieces, a CR at the end of
			// one of them included.
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				var got []hubclient.Event
				rd := hubclient.NewEventReader(r)
				for {
					ev, err := rd.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, ev)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("got %q\nwant %q", got, tc.want)
				}
			}
		})
	}
}

func TestEventReaderError(t *testing.T) {
	rd := hubclient.NewEventReader(io.MultiReader(strings.NewReader("data: 1\n\ndata: 2"), iotest.ErrReader(io.ErrUnexpectedEOF)))
	if ev, err := rd.Next(); err != nil || ev.Data != "1" {
		t.Fatalf("first event: %v %v", ev, err)
	}
	if _, err := rd.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a broken connection: %v, want its error", err)
	}
}
