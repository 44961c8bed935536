package attribution

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
)

// MaxParseCost bounds the memory pprof's parser may spend on one profile,
// as parseCost estimates it. The decompressed size alone does not bound
// it: a sample's location ids are one byte each in the proto and sixteen
// in memory, an empty Location message is two bytes and a hundred-odd in
// memory, so 60 MiB of proto (60 KiB gzipped) parsed into 960 MiB and
// merged into 2.8 GiB more. A real heap profile of a large service (50,000
// stacks of 128 frames) costs about 110 MiB by this estimate.
const MaxParseCost = 128 << 20

// Estimated bytes of parsed profile per element of the proto (generous
// sizes of the Go structs and slice entries pprof's decoder makes).
const (
	costMessage = 256 // a Sample, Mapping, Location, Function or ValueType
	costLine    = 64  // a Location's Line
	costLabel   = 128 // a Sample's Label (maps)
	costRef     = 24  // a location id: its index and its *Location
	costNumber  = 8   // a value, a comment
	costString  = 16  // a string-table entry, plus its length
)

var errMalformed = errors.New("malformed profile proto")

// parseCost walks a raw profile proto's wire format, without decoding it
// into structs, and estimates what decoding it would allocate.
func parseCost(raw []byte) (int64, error) {
	var cost int64
	err := eachField(raw, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == 2 && typ == protowire.BytesType: // Sample
			cost += costMessage
			return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				switch num {
				case 1: // location_id
					cost += costRef * varints(typ, v)
				case 2: // value
					cost += costNumber * varints(typ, v)
				case 3: // label
					cost += costLabel
				}
				return nil
			})
		case num == 4 && typ == protowire.BytesType: // Location
			cost += costMessage
			return eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				if num == 4 { // line
					cost += costLine
				}
				return nil
			})
		case num == 1 || num == 3 || num == 5 || num == 11: // ValueType, Mapping, Function
			cost += costMessage
		case num == 6: // string_table
			cost += costString + int64(len(v))
		case num == 13: // comment
			cost += costNumber * varints(typ, v)
		}
		return nil
	})
	return cost, err
}

// eachField calls fn with every field of a message, in order; v is the
// field's bytes for a length-delimited field, else nil.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		var v []byte
		if typ == protowire.BytesType {
			v, n = protowire.ConsumeBytes(b)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errMalformed
		}
		b = b[n:]
		if err := fn(num, typ, v); err != nil {
			return err
		}
	}
	return nil
}

// varints counts the numbers a repeated varint field's occurrence holds:
// one unpacked, or one per final byte packed.
func varints(typ protowire.Type, v []byte) int64 {
	if typ != protowire.BytesType {
		return 1
	}
	var n int64
	for _, c := range v {
		if c < 0x80 {
			n++
		}
	}
	return n
}
