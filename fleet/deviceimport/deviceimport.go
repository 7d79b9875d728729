// Package deviceimport reads the devices of a registry import (`lockerhub device import`) from
// CSV or JSON lines and validates them all before any is registered, so that a file goes in
// whole or not at all and every bad row is reported with its line at once.
//
// JSON lines: one object per line, {"id": "bank-1", "kind": "locker-bank", "site":
// "elm-street", "doors": 24, "labels": {"floor": "lobby"}}. CSV: a header line naming the
// columns id, kind, site, doors and optionally labels, in any order; labels are key=value pairs
// separated by ';'. The format is told by the first character: '{' starts JSON lines. Blank
// lines are skipped.
package deviceimport

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/lockerhub/lockerhub/fleet"
)

// MaxErrors bounds how many bad rows Read lists: a file with the wrong columns would otherwise
// give one error per line of it.
const MaxErrors = 20

// row is one device read, with the line it came from.
type row struct {
	line   int
	device fleet.Device
}

// Read reads devices as JSON lines or CSV (see the package comment) and validates each,
// including that no id appears twice. Its error lists every bad row with its line number (up
// to MaxErrors), so that a file is fixed in one go; it also says so for a file without devices
// and passes on a failure to read r.
func Read(r io.Reader) ([]*fleet.Device, error) {
	br := bufio.NewReader(r)
	first, err := firstNonSpace(br)
	if err != nil {
		return nil, err
	}
	var rows []row
	var bad []error
	switch first {
	case 0:
		return nil, errors.New("no devices in the file")
	case '{':
		rows, bad = readJSONLines(br)
	default:
		rows, bad = readCSV(br)
	}
	seen := make(map[string]int, len(rows))
	for _, r := range rows {
		if err := r.device.Validate(); err != nil {
			bad = append(bad, fmt.Errorf("line %d: %w", r.line, err))
		} else if prev, dup := seen[r.device.ID]; dup {
			bad = append(bad, fmt.Errorf("line %d: device id %q is also on line %d", r.line, r.device.ID, prev))
		} else {
			seen[r.device.ID] = r.line
		}
	}
	switch {
	case len(bad) > MaxErrors:
		bad = append(bad[:MaxErrors], fmt.Errorf("and %d more bad rows", len(bad)-MaxErrors))
		fallthrough
	case len(bad) > 0:
		return nil, fmt.Errorf("bad rows:\n%w", errors.Join(bad...))
	case len(rows) == 0:
		return nil, errors.New("no devices in the file")
	}
	devices := make([]*fleet.Device, len(rows))
	for i := range rows {
		devices[i] = &rows[i].device
	}
	return devices, nil
}

// firstNonSpace peeks at the first character that is not white space, or 0 for empty input.
// It consumes nothing, so that line numbers stay those of the file.
func firstNonSpace(br *bufio.Reader) (byte, error) {
	for n := 1; ; n++ {
		b, err := br.Peek(n)
		if err == io.EOF {
			return 0, nil
		} else if err != nil {
			return 0, err
		}
		if c := b[n-1]; !bytes.ContainsRune([]byte(" \t\r\n"), rune(c)) {
			return c, nil
		}
	}
}

func readJSONLines(r io.Reader) (rows []row, bad []error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields() // a misspelt "door" must not become 0 doors
		// What device add takes; not fleet.Device, whose other fields are the hub's to set.
		var d struct {
			ID     string            `json:"id"`
			Kind   fleet.Kind        `json:"kind"`
			Site   string            `json:"site"`
			Doors  int               `json:"doors"`
			Labels map[string]string `json:"labels"`
		}
		if err := dec.Decode(&d); err != nil {
			bad = append(bad, fmt.Errorf("line %d: %w", line, err))
			continue
		}
		rows = append(rows, row{line: line, device: fleet.Device{ID: d.ID, Kind: d.Kind, Site: d.Site, Doors: d.Doors, Labels: d.Labels}})
	}
	if err := sc.Err(); err != nil {
		bad = append(bad, err)
	}
	return rows, bad
}

// csvColumns are the columns of a CSV import; labels is optional.
var csvColumns = []string{"id", "kind", "site", "doors", "labels"}

func readCSV(r io.Reader) (rows []row, bad []error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1 // a short row is reported with its line, not as a parse failure
	header, err := cr.Read()
	if err != nil {
		return nil, []error{fmt.Errorf("line 1: %w", err)}
	}
	col := map[string]int{}
	for i, name := range header {
		name = strings.ToLower(strings.TrimSpace(name))
		if !slices.Contains(csvColumns, name) {
			return nil, []error{fmt.Errorf("line 1: unknown column %q; want %s", name, strings.Join(csvColumns, ", "))}
		}
		col[name] = i
	}
	for _, name := range csvColumns[:4] {
		if _, ok := col[name]; !ok {
			return nil, []error{fmt.Errorf("line 1: no column %q; want %s", name, strings.Join(csvColumns, ", "))}
		}
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return rows, bad
		}
		line, _ := cr.FieldPos(0)
		if err != nil {
			if line == 0 { // a broken quote ends the file for the reader
				return rows, append(bad, err)
			}
			bad = append(bad, err) // csv's errors name the line
			continue
		}
		if len(rec) != len(header) {
			bad = append(bad, fmt.Errorf("line %d: %d fields, want %d", line, len(rec), len(header)))
			continue
		}
		field := func(name string) string {
			if i, ok := col[name]; ok {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		d := fleet.Device{ID: field("id"), Kind: fleet.Kind(field("kind")), Site: field("site")}
		if d.Doors, err = strconv.Atoi(field("doors")); err != nil {
			bad = append(bad, fmt.Errorf("line %d: doors %q is not a number", line, field("doors")))
			continue
		}
		var pairs []string
		if l := field("labels"); l != "" {
			pairs = strings.Split(l, ";")
		}
		if d.Labels, err = fleet.ParseLabels(pairs); err != nil {
			bad = append(bad, fmt.Errorf("line %d: %w", line, err))
			continue
		}
		rows = append(rows, row{line: line, device: d})
	}
}
