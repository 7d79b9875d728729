package hubclient

import (
	"bufio"
	"bytes"
	"cmp"
	"io"
	"strings"
)

// Event is one server-sent event.
type Event struct {
	Name string // "message" when the server named none
	Data string // its data lines, joined with "\n"
	ID   string // the last event id the stream set
}

// EventReader reads server-sent events as the HTML standard defines text/event-stream: lines
// ending in LF, CRLF or CR; "field: value" lines (event, data, id; others ignored); comments
// starting with ":" (keepalives); an event dispatched by a blank line, if it had data.
type EventReader struct {
	sc     *bufio.Scanner
	lastID string
	begun  bool
}

// NewEventReader returns a reader of the events of r, such as the body of the API's event
// stream (GET /api/v1/stream).
func NewEventReader(r io.Reader) *EventReader {
	sc := bufio.NewScanner(r)
	// A device event carries the unit's whole live state: up to 64 doors, well under 1 MiB.
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	sc.Split(scanSSELines)
	return &EventReader{sc: sc}
}

// Next returns the next event; io.EOF when the stream ends. An event the stream cut off before
// its blank line is dropped, as the standard says.
func (r *EventReader) Next() (Event, error) {
	var (
		name    string
		data    strings.Builder
		hasData bool
	)
	for r.sc.Scan() {
		line := r.sc.Text()
		if !r.begun {
			r.begun = true
			line = strings.TrimPrefix(line, "\uFEFF") // a byte order mark may open the stream
		}
		switch {
		case line == "":
			if !hasData {
				name = "" // an event without data is not dispatched
				continue
			}
			return Event{Name: cmp.Or(name, "message"), Data: strings.TrimSuffix(data.String(), "\n"), ID: r.lastID}, nil
		case line[0] == ':':
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			name = value
		case "data":
			data.WriteString(value)
			data.WriteByte('\n')
			hasData = true
		case "id":
			if !strings.ContainsRune(value, 0) {
				r.lastID = value
			}
		}
	}
	if err := r.sc.Err(); err != nil {
		return Event{}, err
	}
	return Event{}, io.EOF
}

// scanSSELines is a bufio.SplitFunc for lines ending in LF, CRLF or a lone CR.
func scanSSELines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	i := bytes.IndexAny(data, "\r\n")
	switch {
	case i < 0 && atEOF && len(data) > 0:
		return len(data), data, nil
	case i < 0:
		return 0, nil, nil
	case data[i] == '\r' && i+1 == len(data) && !atEOF:
		return 0, nil, nil // wait: a LF may follow
	case data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n':
		return i + 2, data[:i], nil
	}
	return i + 1, data[:i], nil
}
