package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// headerSize is the length and CRC in front of every payload.
const headerSize = 8

// castagnoli is CRC-32C, which current x86 and ARM CPUs compute in hardware, so checking every
// record on Open and on Read costs little next to the disk.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum is the CRC-32C of p.
func checksum(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// recordSize is the number of bytes a payload of n bytes takes in a segment.
func recordSize(n int) int64 { return headerSize + int64(n) }

// putHeader writes the header of payload p, whose CRC is sum, into h.
func putHeader(h *[headerSize]byte, p []byte, sum uint32) {
	binary.BigEndian.PutUint32(h[0:4], uint32(len(p)))
	binary.BigEndian.PutUint32(h[4:8], sum)
}

const segmentExt = ".seg"

// segmentName is the file name of segment id: 20 digits, so that names sort like ids.
func segmentName(id uint64) string { return fmt.Sprintf("%020d%s", id, segmentExt) }

// parseSegmentName is the inverse of segmentName; ok is false for any other file.
func parseSegmentName(name string) (id uint64, ok bool) {
	digits, found := strings.CutSuffix(name, segmentExt)
	if !found || len(digits) != 20 {
		return 0, false
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	return id, err == nil
}

// errCorrupt reports bytes that are not a valid record: a torn write or damage.
var errCorrupt = errors.New("spool: corrupt record")

// recordReader reads the records of one segment between two offsets, through a buffer so that
// small records do not cost a system call each.
type recordReader struct {
	br       *bufio.Reader
	off, end int64
	hdr      [headerSize]byte
}

func newRecordReader() *recordReader {
	return &recordReader{br: bufio.NewReaderSize(nil, 256<<10)}
}

// reset makes r read f from offset from up to offset to.
func (r *recordReader) reset(f *os.File, from, to int64) {
	r.br.Reset(io.NewSectionReader(f, from, to-from))
	r.off, r.end = from, to
}

// next returns the payload of the next record, read into buf if it is large enough, and
// advances r.off past it. It returns io.EOF at the end and errCorrupt, leaving r.off at the
// bad record, if the bytes there are not a whole record with a matching CRC. A zero length is
// corrupt too: Append refuses empty payloads because a zero-filled tail, which a file system
// can leave after a power loss, would otherwise read as a run of valid empty records.
func (r *recordReader) next(buf []byte) ([]byte, error) {
	if r.off >= r.end {
		return nil, io.EOF
	}
	if _, err := io.ReadFull(r.br, r.hdr[:]); err != nil {
		return nil, corruptAtEOF(err)
	}
	n := int64(binary.BigEndian.Uint32(r.hdr[0:4]))
	if n == 0 || n > r.end-r.off-headerSize {
		return nil, errCorrupt
	}
	if int64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r.br, buf); err != nil {
		return nil, corruptAtEOF(err)
	}
	if checksum(buf) != binary.BigEndian.Uint32(r.hdr[4:8]) {
		return nil, errCorrupt
	}
	r.off += headerSize + n
	return buf, nil
}

// corruptAtEOF turns running out of file inside a record, which means the file is shorter than
// its records say, into errCorrupt; other read errors are I/O errors and stay what they are.
func corruptAtEOF(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errCorrupt
	}
	return err
}

// The cursor file holds the committed Position: segment and offset as big-endian uint64s,
// then the CRC-32C of those 16 bytes.
const (
	cursorName = "cursor"
	cursorSize = 20
)

func encodeCursor(p Position) []byte {
	b := make([]byte, cursorSize)
	binary.BigEndian.PutUint64(b[0:8], p.Segment)
	binary.BigEndian.PutUint64(b[8:16], uint64(p.Offset))
	binary.BigEndian.PutUint32(b[16:20], checksum(b[:16]))
	return b
}

// readCursor returns the committed cursor in dir; a missing file is the zero Position, the
// start of the spool. A damaged one is errCorrupt.
func readCursor(dir string) (Position, error) {
	b, err := os.ReadFile(filepath.Join(dir, cursorName))
	if errors.Is(err, os.ErrNotExist) {
		return Position{}, nil
	}
	if err != nil {
		return Position{}, err
	}
	if len(b) != cursorSize || checksum(b[:16]) != binary.BigEndian.Uint32(b[16:20]) {
		return Position{}, errCorrupt
	}
	return Position{Segment: binary.BigEndian.Uint64(b[0:8]), Offset: int64(binary.BigEndian.Uint64(b[8:16]))}, nil
}
