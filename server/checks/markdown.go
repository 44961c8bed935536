package checks

import (
	"regexp"
	"strings"
	"unicode"
)

// Check run summaries are GitHub-flavoured Markdown, and much of what they
// quote comes from a pull request: its service's output, the function names
// in the profiles it served, errors naming its files. Each such string goes
// through one of these, so that none can end the structure around it or
// make links, images, mentions or HTML of its own.

// text is s as inline Markdown text: one line (control characters become
// spaces), every character that can open an inline construct (emphasis,
// code, links and images, autolinks and HTML, entities, strikethrough,
// table cells) escaped with a backslash, and a zero-width space after each
// @, in each "://" and each "www.": GitHub finds mentions and bare links in
// the rendered text, escaped or not. It is not meant for the start of a
// line.
func text(s string) string {
	var b strings.Builder
	for _, r := range unlink.ReplaceAllStringFunc(flatten(s), breakLink) {
		switch r {
		case '\\', '`', '*', '_', '[', ']', '<', '>', '!', '|', '~', '&':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '@':
			b.WriteString("@\u200b")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// code is s as an inline code span: delimited by a backtick run longer than
// any in s (CommonMark: a span ends only at a run of the same length),
// padded when s starts or ends with a backtick, and on one line.
func code(s string) string {
	s = flatten(s)
	if strings.TrimSpace(s) == "" {
		return "` `"
	}
	delim := strings.Repeat("`", longestRun(s, '`')+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") || (strings.HasPrefix(s, " ") && strings.HasSuffix(s, " ")) {
		s = " " + s + " "
	}
	return delim + s + delim
}

// cellCode is code for a table cell: GFM splits a row at every | not
// escaped, even inside code, and unescapes \| there.
func cellCode(s string) string { return strings.ReplaceAll(code(s), "|", `\|`) }

// fence is s as a fenced code block: its fence is longer than any backtick
// run in s, so no line of s can close it (a ~~~ line cannot close a
// backtick fence at all), and everything inside is literal.
func fence(s string) string {
	delim := strings.Repeat("`", max(3, longestRun(s, '`')+1))
	return delim + "\n" + strings.TrimSuffix(s, "\n") + "\n" + delim
}

var unlink = regexp.MustCompile(`(?i)://|www\.`)

func breakLink(m string) string { return m[:len(m)-1] + "\u200b" + m[len(m)-1:] }

// flatten puts s on one line: control characters become spaces.
func flatten(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}

func longestRun(s string, c byte) int {
	longest, n := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			n++
			longest = max(longest, n)
		} else {
			n = 0
		}
	}
	return longest
}
