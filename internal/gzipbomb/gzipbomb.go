// Package gzipbomb makes gzip bombs for tests: valid gzip streams of GiBs
// of zeros, a thousand times smaller, streamed, never held whole.
package gzipbomb

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"hash/crc32"
	"io"
)

// Bomb is a gzip stream of a number of MiB of zeros. Once deflate's window
// holds only zeros, one flushed MiB of zeros is a run of blocks that
// decodes the same wherever it is repeated: the bomb is that run, repeated,
// after a first MiB, and a valid trailer.
type Bomb struct {
	head, seg []byte
	mib       int
}

// New makes a bomb of mib MiB (at least 2) of zeros.
func New(mib int) *Bomb {
	mib = max(mib, 2)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	zw.Write(zeros)
	zw.Flush()
	h := buf.Len()
	zw.Write(zeros)
	zw.Flush()
	return &Bomb{head: append([]byte(nil), buf.Bytes()[:h]...), seg: append([]byte(nil), buf.Bytes()[h:]...), mib: mib}
}

// Size is the compressed size.
func (b *Bomb) Size() int { return len(b.head) + (b.mib-1)*len(b.seg) + 10 }

// WriteTo streams the bomb to w.
func (b *Bomb) WriteTo(w io.Writer) (int64, error) {
	var n int64
	write := func(p []byte) error {
		m, err := w.Write(p)
		n += int64(m)
		return err
	}
	if err := write(b.head); err != nil {
		return n, err
	}
	for i := 1; i < b.mib; i++ {
		if err := write(b.seg); err != nil {
			return n, err
		}
	}
	// An empty final block, then the trailer: CRC-32 and length of it all.
	crc := uint32(0)
	zeros := make([]byte, 1<<20)
	for i := 0; i < b.mib; i++ {
		crc = crc32.Update(crc, crc32.IEEETable, zeros)
	}
	tail := []byte{0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(tail[2:], crc)
	binary.LittleEndian.PutUint32(tail[6:], uint32(uint64(b.mib)<<20))
	return n, write(tail)
}

// Bytes is the whole bomb, for callers that need it in memory (it is
// about a thousandth of what it inflates to).
func (b *Bomb) Bytes() []byte {
	var buf bytes.Buffer
	buf.Grow(b.Size())
	b.WriteTo(&buf)
	return buf.Bytes()
}
