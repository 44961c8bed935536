package service

import (
	"strings"
	"testing"
)

func TestTailKeepsTheEnd(t *testing.T) {
	tl := NewTail(32)
	for i := 0; i < 100; i++ {
		tl.Write([]byte("line " + strings.Repeat("x", i%7) + "\n"))
	}
	tl.Write([]byte("the last line\n"))
	s := tl.String()
	if !strings.HasPrefix(s, "[... earlier output dropped]\n") || !strings.HasSuffix(s, "the last line\n") {
		t.Fatalf("tail %q", s)
	}
	if got := tl.LastLines(1); got != "the last line" {
		t.Fatalf("last line %q", got)
	}
	small := NewTail(100)
	small.Write([]byte("a\nb\n"))
	if small.String() != "a\nb\n" {
		t.Fatalf("small %q", small.String())
	}
}

func TestToolchainEnvKeepsSecretsOut(t *testing.T) {
	env := map[string]string{
		"PATH": "/usr/bin", "HOME": "/root", "GOPROXY": "https://proxy.example",
		"MEMGATE_GITHUB_TOKEN": "ghs_secret", "MEMGATE_WEBHOOK_SECRET": "s3cret", "AWS_SECRET_ACCESS_KEY": "k",
		"GOTOOLCHAIN": "auto",
	}
	got := strings.Join(ToolchainEnv(func(k string) string { return env[k] }), "\n")
	for _, want := range []string{"PATH=/usr/bin", "HOME=/root", "GOPROXY=https://proxy.example", "GOTOOLCHAIN=local"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %s in\n%s", want, got)
		}
	}
	for _, secret := range []string{"ghs_secret", "s3cret", "AWS_SECRET", "GOTOOLCHAIN=auto"} {
		if strings.Contains(got, secret) {
			t.Errorf("%s leaked into the build environment", secret)
		}
	}
}

func TestCheckPortFree(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPortFree(port); err != nil {
		t.Fatalf("free port reported taken: %v", err)
	}
}

func TestCrashCatcherFindsTheReasonBeforeALongDump(t *testing.T) {
	c := &crashCatcher{}
	c.Write([]byte("listening on 127.0.0.1:8080\nruntime: failed to create new OS thread (have 9 already; errno=11)\nruntime: may need"))
	c.Write([]byte(" to increase max user processes (ulimit -u)\nfatal error: newosproc\n"))
	for i := 0; i < 10000; i++ {
		c.Write([]byte("goroutine 1 [running]:\n\tmain.main()\n"))
	}
	if got := c.String(); got != "runtime: failed to create new OS thread (have 9 already; errno=11); fatal error: newosproc" {
		t.Fatalf("reason %q", got)
	}
	p := &crashCatcher{}
	p.Write([]byte("panic: orders: nil map wr"))
	p.Write([]byte("ite\n\ngoroutine 7 [running]:\n"))
	if got := p.String(); got != "panic: orders: nil map write" {
		t.Fatalf("reason %q", got)
	}
}
