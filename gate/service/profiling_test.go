package service

import (
	"slices"
	"testing"
)

func TestWithHeapProfileRateKeepsTheRepositorysGODEBUG(t *testing.T) {
	cases := []struct{ in, want []string }{
		{[]string{"PORT=1"}, []string{"PORT=1", "GODEBUG=memprofilerate=65536"}},
		{[]string{"GODEBUG=http2client=0", "PORT=1"}, []string{"GODEBUG=http2client=0,memprofilerate=65536", "PORT=1"}},
		// The process sees the last one: that is the one extended.
		{[]string{"GODEBUG=a=1", "GODEBUG=b=1"}, []string{"GODEBUG=a=1", "GODEBUG=b=1,memprofilerate=65536"}},
		{[]string{"GODEBUG="}, []string{"GODEBUG=memprofilerate=65536"}},
		{[]string{"GODEBUG=memprofilerate=1"}, []string{"GODEBUG=memprofilerate=1"}},
	}
	for _, c := range cases {
		in := slices.Clone(c.in)
		if got := WithHeapProfileRate(in); !slices.Equal(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("%q: the caller's slice was changed", c.in)
		}
	}
}
