package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-github/v60/github"
)

// go test ./server -run '^$' -fuzz FuzzParseEvent -fuzztime 1m
func FuzzParseEvent(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "github-payloads", "*.json"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		name := filepath.Base(p)
		event := name[:len(name)-len(filepath.Ext(name))]
		if i := len(event) - len(filepath.Ext(event)); i > 0 {
			event = event[:i]
		}
		f.Add(event, b)
	}
	f.Add("pull_request", []byte(`{"pull_request":null}`))
	f.Add("check_run", []byte(`{"check_run":{"pull_requests":[{}]},"repository":{}}`))
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		e, err := parseEvent(event, body)
		if err != nil {
			return
		}
		// What parses is safe to use: the fields each handler reads exist.
		switch event {
		case "pull_request":
			_ = e.PullRequest.Head.SHA + e.repo().FullName
		case "check_run":
			for _, p := range e.CheckRun.PullRequests {
				_ = p.sameRepoIDs() || p.Base.SHA != ""
			}
		case "check_suite":
			for _, p := range e.CheckSuite.PullRequests {
				_ = p.sameRepoIDs() || p.Base.SHA != ""
			}
		}
		if e.Changes != nil && e.Changes.Base != nil {
			_ = e.Changes.Base.Ref.From
		}
		_ = e.installationID()
	})
}

// A signature is accepted only when it is the body's HMAC-SHA256 under the
// secret (testdata/fuzz holds the case the fuzzer found: upper-case hex is
// the same MAC). go test ./server -run '^$' -fuzz FuzzSignature -fuzztime 1m
func FuzzSignature(f *testing.F) {
	f.Add([]byte("Hello, World!"), "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	f.Add([]byte(`{"zen":"x"}`), "")
	f.Add([]byte(""), "sha1=abc")
	const secret = "It's a Secret to Everybody"
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		err := github.ValidateSignature(sig, body, []byte(secret))
		// Hex digits are read in either case: the same MAC bytes.
		if err == nil && strings.ToLower(sig) != want {
			t.Fatalf("accepted signature %q for a body whose signature is %q", sig, want)
		}
		if sig == want && err != nil {
			t.Fatalf("refused the right signature: %v", err)
		}
	})
}
