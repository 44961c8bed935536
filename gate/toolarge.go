package gate

import "errors"

// ErrTooLarge marks something a service sent that is larger than memgate
// will read or decompress: a profile, a pprof page, the reader's numbers.
// The service is broken or hostile, and its gate an error; the error's
// text says which read it was.
var ErrTooLarge = errors.New("too large")
