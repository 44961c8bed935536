package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"testing"
)

// mapFiles is a repository held in memory; it records every name asked.
type mapFiles struct {
	files map[string]string
	asked []string
}

func (m *mapFiles) ReadFile(_ context.Context, name string, limit int64) ([]byte, error) {
	m.asked = append(m.asked, name)
	s, ok := m.files[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	if int64(len(s)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, limit)
	}
	return []byte(s), nil
}

func TestReadTargetsFile(t *testing.T) {
	files := &mapFiles{files: map[string]string{
		"load/targets.http":      "# orders\nGET /orders\nX-Trace: 1\n\nPOST http://127.0.0.1:{{port}}/orders\nContent-Type: application/json\nX-Port: {{port}}\n@bodies/order.json\n\nDELETE /orders/1\n",
		"load/bodies/order.json": `{"id": "{{port}}"}`,
	}}
	tg, err := ReadTargetsFile(context.Background(), files, "load/targets.http")
	if err != nil {
		t.Fatal(err)
	}
	tg = Expand(tg, func(s string) string { return strings.ReplaceAll(s, "{{port}}", "8123") })
	if len(tg) != 3 || tg[0].URL != "/orders" || tg[0].Header.Get("X-Trace") != "1" || tg[1].Method != "POST" ||
		tg[1].URL != "http://127.0.0.1:8123/orders" || tg[1].Header.Get("X-Port") != "8123" || tg[2].Method != "DELETE" {
		t.Fatalf("targets %+v", tg)
	}
	// The body is sent as the file has it, as vegeta does.
	if string(tg[1].Body) != `{"id": "{{port}}"}` {
		t.Errorf("body %q", tg[1].Body)
	}
	for _, bad := range []string{"NOPE\n", "GET\n", "get /x\n", "GET /x\nnot a header\n", "GET /x\n@\n", "GET /x\n\n@body\n", ""} {
		files.files["t"] = bad
		if _, err := ReadTargetsFile(context.Background(), files, "t"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A body line names a file of the repository, never one of the machine:
// absolute paths and ".." are refused before anything is read, with the
// file and the line.
func TestTargetsBodiesStayInTheRepository(t *testing.T) {
	for _, ref := range []string{"/etc/shadow", "../../etc/passwd", "a/../../x", "/proc/self/environ", "/dev/zero", "..", "x/.."} {
		files := &mapFiles{files: map[string]string{"targets.http": "POST /\nContent-Type: text/plain\n@" + ref + "\n"}}
		_, err := ReadTargetsFile(context.Background(), files, "targets.http")
		var le *LineError
		if !errors.As(err, &le) || le.File != "targets.http" || le.Line != 3 {
			t.Errorf("@%s: %v, want a line 3 error", ref, err)
			continue
		}
		if !strings.Contains(err.Error(), "targets.http: line 3: body") {
			t.Errorf("@%s: %v", ref, err)
		}
		if len(files.asked) != 1 {
			t.Errorf("@%s: read %v", ref, files.asked)
		}
	}
}

// Each body and all of them together are bounded: a targets file of many
// references to one big file cannot make memgate hold more.
func TestTargetsBodiesAreBounded(t *testing.T) {
	big := strings.Repeat("x", MaxBodyFile)
	var tf strings.Builder
	for i := 0; i < MaxBodies/MaxBodyFile+1; i++ {
		tf.WriteString("POST /\n@big\n\n")
	}
	files := &mapFiles{files: map[string]string{"t": tf.String(), "big": big, "huge": big + "x"}}
	_, err := ReadTargetsFile(context.Background(), files, "t")
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("line %d", 3*(MaxBodies/MaxBodyFile)+2)) ||
		!strings.Contains(err.Error(), "together pass") {
		t.Fatalf("%v", err)
	}
	files.files["t"] = "POST /\n@huge\n"
	if _, err := ReadTargetsFile(context.Background(), files, "t"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("an over-sized body: %v", err)
	}
}

// Expand fills URLs, header values and bodies (a probe exporter's target
// names a dependency: /probe?target={{dep.tls.addr}}); a body without a
// placeholder is sent byte for byte.
func TestExpandFillsURLsHeadersAndBodies(t *testing.T) {
	binary := []byte{0xff, 0x00, '{', 0xfe}
	tg := []Target{
		{Method: "POST", URL: "/probe?target={{dep.tls.addr}}", Header: http.Header{"X-Up": []string{"{{dep.tls.addr}}"}}, Body: []byte(`{"target":"{{dep.tls.addr}}"}`), FillBody: true},
		{Method: "POST", URL: "/raw", Body: binary, FillBody: true},
	}
	got := Expand(tg, func(s string) string { return strings.ReplaceAll(s, "{{dep.tls.addr}}", "127.0.0.1:4443") })
	if got[0].URL != "/probe?target=127.0.0.1:4443" || got[0].Header.Get("X-Up") != "127.0.0.1:4443" || string(got[0].Body) != `{"target":"127.0.0.1:4443"}` {
		t.Fatalf("%+v", got[0])
	}
	if !bytes.Equal(got[1].Body, binary) {
		t.Fatalf("a body without a placeholder changed: %q", got[1].Body)
	}
	big := bytes.Repeat([]byte("{{dep.tls.addr}}"), 5000) // 80 KB
	if got := Expand([]Target{{Method: "POST", URL: "/", Body: big, FillBody: true}}, func(s string) string { return strings.ReplaceAll(s, "{{dep.tls.addr}}", "127.0.0.1:4443") }); !bytes.Equal(got[0].Body, big) {
		t.Fatalf("a body over 64 KiB was filled: %d bytes", len(got[0].Body))
	}
	if tg[0].URL != "/probe?target={{dep.tls.addr}}" || tg[0].Header.Get("X-Up") != "{{dep.tls.addr}}" || string(tg[0].Body) != `{"target":"{{dep.tls.addr}}"}` {
		t.Fatalf("the targets given were changed: %+v", tg[0])
	}
}
