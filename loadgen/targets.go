// Package loadgen drives a service with HTTP load through vegeta as a
// library: a constant rate, a fixed number of connections, bodies discarded,
// and only ever loopback addresses.
package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Target is one request of the load's rotation. URL may be a path
// ("/orders"), resolved against the service's base URL.
type Target struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
}

// MaxTargetsFile bounds a targets file read from a repository.
const MaxTargetsFile = 8 << 20

// ReadTargetsFile reads a vegeta "http" format targets file. Body files
// ("@file" lines) are resolved relative to dir, the file's directory, and
// {{port}} becomes the service's port.
func ReadTargetsFile(r io.Reader, dir string, port int) ([]Target, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxTargetsFile+1))
	if err != nil {
		return nil, fmt.Errorf("targets file: %w", err)
	}
	if len(data) > MaxTargetsFile {
		return nil, fmt.Errorf("targets file: larger than %d bytes", MaxTargetsFile)
	}
	data = bytes.ReplaceAll(data, []byte("{{port}}"), []byte(strconv.Itoa(port)))
	var rewritten bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), MaxTargetsFile)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "@") && !filepath.IsAbs(line[1:]) {
			line = "@" + filepath.Join(dir, line[1:])
		}
		rewritten.WriteString(line + "\n")
	}
	vt, err := vegeta.ReadAllTargets(vegeta.NewHTTPTargeter(&rewritten, nil, nil))
	if err != nil {
		return nil, fmt.Errorf("targets file: %w", err)
	}
	out := make([]Target, len(vt))
	for i, t := range vt {
		out[i] = Target{Method: t.Method, URL: t.URL, Header: t.Header, Body: t.Body}
	}
	return out, nil
}

// resolve turns targets into vegeta's, with path-only URLs joined to base
// and every host checked to be loopback.
func resolve(base string, targets []Target) ([]vegeta.Target, error) {
	if len(targets) == 0 {
		return nil, errors.New("loadgen: no targets")
	}
	b, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("loadgen: base URL: %w", err)
	}
	out := make([]vegeta.Target, 0, len(targets))
	for _, t := range targets {
		u, err := b.Parse(t.URL)
		if err != nil {
			return nil, fmt.Errorf("loadgen: target %q: %w", t.URL, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, fmt.Errorf("loadgen: target %q: scheme must be http or https", t.URL)
		}
		if !IsLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("loadgen: target %q: only loopback addresses may be loaded", u.String())
		}
		out = append(out, vegeta.Target{Method: t.Method, URL: u.String(), Header: t.Header.Clone(), Body: t.Body})
	}
	return out, nil
}

// IsLoopbackHost reports whether host names this machine's loopback.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
