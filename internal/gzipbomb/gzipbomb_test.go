package gzipbomb

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"
)

func TestBombIsValidGzip(t *testing.T) {
	b := New(40)
	data := b.Bytes()
	if len(data) != b.Size() || len(data) > 80<<10 {
		t.Fatalf("%d bytes, Size %d", len(data), b.Size())
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, zr)
	if err != nil || n != 40<<20 {
		t.Fatalf("inflated %d bytes: %v", n, err)
	}
}
