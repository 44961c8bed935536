package web

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// browserResolve reads a Location header as a browser's URL parser does
// (WHATWG URL): leading and trailing C0 controls and spaces go, tabs and
// newlines go from anywhere, and a backslash is a slash in http(s) URLs.
func browserResolve(t *testing.T, base, loc string) *url.URL {
	t.Helper()
	loc = strings.TrimFunc(loc, func(r rune) bool { return r <= 0x20 })
	loc = strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(loc)
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatalf("Location %q does not parse: %v", loc, err)
	}
	return b.ResolveReference(u)
}

// postLogin signs in with next through the transport itself: Go's client
// would refuse to even read a Location a browser follows.
func postLogin(t *testing.T, base, next string) *http.Response {
	t.Helper()
	form := url.Values{"token": {testToken}, "next": {next}}.Encode()
	req, _ := http.NewRequest(http.MethodPost, base+"/login", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

var nextField = regexp.MustCompile(`name="next" value="([^"]*)"`)

// Signing in with a hostile next, through the real pages: the form carries
// it on, the login redirects to it, and a browser following that Location
// must stay on memgate's host.
func TestLoginNextCannotLeaveTheSite(t *testing.T) {
	b := setup(t, false)
	host := strings.TrimPrefix(b.srv.URL, "http://")
	hostile := []string{
		"/\t/evil.example", "/\n/evil.example", "/\r\n/evil.example/x", "/\\evil.example", "\\/evil.example",
		"//evil.example", "https://evil.example", " //evil.example", "/\t\\evil.example", "\t//evil.example",
		"/\x00/evil.example", "/\u0085/evil.example", "javascript:alert(1)", "http:/evil.example", "/%0A",
	}
	for _, next := range hostile {
		// The form: GET /login?next=... puts next in a hidden field.
		_, body, _ := b.get(t, "/login?next="+url.QueryEscape(next))
		m := nextField.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no next field in the login form")
		}
		formNext := html.UnescapeString(m[1])
		if u := browserResolve(t, b.srv.URL+"/login", formNext); u.Host != host {
			t.Errorf("form next for %q is %q: a browser goes to %s", next, formNext, u)
		}
		// The login itself, with next posted as given.
		resp := postLogin(t, b.srv.URL, next)
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("login with next %q: %d", next, resp.StatusCode)
		}
		if u := browserResolve(t, b.srv.URL+"/login", loc); u.Host != host || u.Scheme != "http" {
			t.Errorf("login with next %q redirects to %q: a browser goes to %s", next, loc, u)
		}
	}
	// Same-site places still work, query and all.
	for next, want := range map[string]string{"/runs/7": "/runs/7", "/repos/acme/api?pr=3": "/repos/acme/api?pr=3", "/%2F%2Fx": "/%2F%2Fx"} {
		resp := postLogin(t, b.srv.URL, next)
		if got := resp.Header.Get("Location"); got != want {
			t.Errorf("next %q: Location %q, want %q", next, got, want)
		}
	}
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/runs/1": "/runs/1", "/?a=b#c": "/?a=b#c", "": "/", "runs": "/", "/\t/evil.example": "/",
		"/\\evil.example": "/", "//evil.example": "/", "/a\x7fb": "/", "/a b": "/a b",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}
