// Package auditfmt formats audit entries as logfmt lines. It is vendored
// into the example services (vendor/), the way many services carry their
// dependencies.
package auditfmt

import (
	"sort"
	"strconv"
	"strings"
)

// Format renders fields as one logfmt line, keys sorted.
func Format(fields map[string]string) string {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(fields[k]))
	}
	return b.String()
}
