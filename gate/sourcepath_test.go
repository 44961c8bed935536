package gate

import (
	"strings"
	"testing"
)

func TestSourceTakesOnlyPlainPathsInsideTheRepository(t *testing.T) {
	for _, tc := range []struct {
		frame *Frame
		want  string // file:line, or "" when refused
		vend  bool
	}{
		{&Frame{File: "main.go", Line: 12}, "main.go:12", false},
		{&Frame{File: "internal/api/handler.go", Line: 3}, "internal/api/handler.go:3", false},
		{&Frame{File: "vendor/github.com/gorilla/sessions/store.go", Line: 80, Vendored: true}, "vendor/github.com/gorilla/sessions/store.go:80", true},
		// Under vendor/ is vendored, whatever the frame says.
		{&Frame{File: "vendor/x/y.go", Line: 1}, "vendor/x/y.go:1", true},
		{nil, "", false},
		{&Frame{File: "main.go"}, "", false},
		{&Frame{File: "main.go", Line: -4}, "", false},
		{&Frame{File: "", Line: 1}, "", false},
		{&Frame{File: "/usr/local/go/src/net/http/server.go", Line: 1}, "", false},
		{&Frame{File: "/root/go/pkg/mod/github.com/x/y@v1.0.0/y.go", Line: 1}, "", false},
		{&Frame{File: "../../etc/passwd", Line: 1}, "", false},
		{&Frame{File: "..", Line: 1}, "", false},
		{&Frame{File: ".", Line: 1}, "", false},
		{&Frame{File: "a/../../b.go", Line: 1}, "", false},
		{&Frame{File: "a/./b.go", Line: 1}, "", false},
		{&Frame{File: "a//b.go", Line: 1}, "", false},
		{&Frame{File: "a/", Line: 1}, "", false},
		{&Frame{File: `a\..\..\b.go`, Line: 1}, "", false},
		{&Frame{File: "C:/src/main.go", Line: 1}, "", false},
		{&Frame{File: "main.go\n::error::x", Line: 1}, "", false},
		{&Frame{File: "main\u2028.go", Line: 1}, "", false},
		{&Frame{File: "ma\xffin.go", Line: 1}, "", false},
		{&Frame{File: strings.Repeat("a/", 600) + "b.go", Line: 1}, "", false},
		// Vendored, it says, but not in the repository's vendor/.
		{&Frame{File: "github.com/gorilla/sessions/store.go", Line: 1, Vendored: true}, "", false},
	} {
		src, ok := tc.frame.Source()
		got := ""
		if ok {
			got = src.String()
		}
		if got != tc.want || src.Vendored != tc.vend || ok != (tc.want != "") {
			t.Errorf("%+v: %q (vendored %v, ok %v), want %q (vendored %v)", tc.frame, got, src.Vendored, ok, tc.want, tc.vend)
		}
	}
}
