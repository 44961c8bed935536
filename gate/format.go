package gate

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// FormatBytes renders a byte count in binary units (e.g. "3.2 MiB").
func FormatBytes(b float64) string {
	neg := b < 0
	b = math.Abs(b)
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	s := fmt.Sprintf("%.1f %s", b, units[i])
	if i == 0 {
		s = fmt.Sprintf("%.0f B", b)
	}
	if neg {
		return "-" + s
	}
	return s
}

func signedBytes(b float64) string {
	if b >= 0 {
		return "+" + FormatBytes(b)
	}
	return FormatBytes(b)
}

// FormatCount renders an integer with thousands separators ("35,012").
func FormatCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func signedCount(n int64) string {
	if n >= 0 {
		return "+" + FormatCount(n)
	}
	return FormatCount(n)
}

// FormatValue renders a criterion's value or limit in its unit.
func FormatValue(v float64, unit string) string {
	switch unit {
	case "ratio":
		return fmt.Sprintf("%.1f%%", 100*v)
	case "bytes/request":
		return fmt.Sprintf("%.1f B/req", v)
	case "goroutines/1k requests":
		return fmt.Sprintf("%.2f /1k req", v)
	case "goroutines", "fds":
		return fmt.Sprintf("%.0f", v)
	case "fds/1k requests":
		return fmt.Sprintf("%.2f fds/1k req", v)
	case "ms":
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%g %s", v, unit)
}

// ShortSHA is a commit's first seven hex digits, as GitHub shows it.
func ShortSHA(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// plural is "1 thing" or "n things".
func plural(n int64, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
