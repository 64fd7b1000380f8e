package main

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"time"
)

// Each record is one shmlink message, and its first byte says what it is:
//
//	'F' an entry:   size u64, mode u32, mtime i64 (Unix ns), then the path
//	'E' the end:    the number of entries sent, u64
//	'X' a failure:  the error text
//
// Integers are little-endian. The path is the rest of the message: the
// link keeps message boundaries, so a name may hold any bytes at all
// (newlines, invalid UTF-8, thousands of bytes) with no escaping and no
// length prefix.
const (
	kindEntry   = 'F'
	kindEnd     = 'E'
	kindFailure = 'X'
	entryHeader = 1 + 8 + 4 + 8
)

type record struct {
	kind  byte
	path  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
	count uint64 // kindEnd
	text  string // kindFailure
}

func appendEntry(b []byte, path string, fi fs.FileInfo) []byte {
	b = append(b, kindEntry)
	b = binary.LittleEndian.AppendUint64(b, uint64(fi.Size()))
	b = binary.LittleEndian.AppendUint32(b, uint32(fi.Mode()))
	b = binary.LittleEndian.AppendUint64(b, uint64(fi.ModTime().UnixNano()))
	return append(b, path...)
}

func appendEnd(b []byte, count uint64) []byte {
	return binary.LittleEndian.AppendUint64(append(b, kindEnd), count)
}

func appendFailure(b []byte, err error) []byte {
	return append(append(b, kindFailure), err.Error()...)
}

func parseRecord(m []byte) (record, error) {
	if len(m) == 0 {
		return record{}, fmt.Errorf("empty record")
	}
	r := record{kind: m[0]}
	switch {
	case r.kind == kindEntry && len(m) >= entryHeader:
		r.size = int64(binary.LittleEndian.Uint64(m[1:]))
		r.mode = fs.FileMode(binary.LittleEndian.Uint32(m[9:]))
		r.mtime = time.Unix(0, int64(binary.LittleEndian.Uint64(m[13:])))
		r.path = string(m[entryHeader:])
	case r.kind == kindEnd && len(m) == 9:
		r.count = binary.LittleEndian.Uint64(m[1:])
	case r.kind == kindFailure:
		r.text = string(m[1:])
	default:
		return record{}, fmt.Errorf("bad record: kind %q, %d bytes", r.kind, len(m))
	}
	return r, nil
}
