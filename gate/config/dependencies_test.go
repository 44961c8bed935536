package config

import (
	"strings"
	"testing"
	"time"
)

func TestDependenciesParse(t *testing.T) {
	cfg, err := Parse([]byte(`
dependencies:
  cache: {kind: redis}
  upstream:
    package: ./upstream
    args: ["-addr", "127.0.0.1:{{port}}"]
    readiness: {http: /healthz}
run:
  env:
    REDIS_ADDR: "{{dep.cache.addr}}"
    UPSTREAM: "http://{{dep.upstream.addr}}/"
  args: ["-redis", "{{dep.cache.url}}"]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.DependencyNames(); strings.Join(got, ",") != "cache,upstream" {
		t.Fatalf("names %v", got)
	}
	up := cfg.Dependencies["upstream"]
	if up.Timeout != 60*time.Second || up.MemoryLimit != 512<<20 || up.Readiness.HTTP != "/healthz" {
		t.Fatalf("defaults not applied: %+v", up)
	}
}

// Every bad dependency is refused with the key that is wrong, and its line.
func TestDependenciesErrorsNameTheKey(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"dependencies:\n  db: {kind: mysql}\n", "line 2: dependencies.db.kind: unknown kind \"mysql\""},
		{"dependencies:\n  db: {kind: redis, program: redis-server}\n", "dependencies.db: set exactly one of"},
		{"dependencies:\n  db: {}\n", "dependencies.db: set exactly one of"},
		{"dependencies:\n  db:\n    program: /usr/bin/redis-server\n", "line 3: dependencies.db.program: \"/usr/bin/redis-server\" must be the name of a program"},
		{"dependencies:\n  db:\n    program: ../x\n", "dependencies.db.program"},
		{"dependencies:\n  up:\n    package: ../elsewhere\n", "line 3: dependencies.up.package"},
		{"dependencies:\n  up:\n    package: /abs\n", "dependencies.up.package"},
		{"dependencies:\n  Up: {kind: redis}\n", "dependencies.Up: a dependency's name"},
		{"dependencies:\n  db:\n    kind: redis\n    args: [--port, '1']\n", "dependencies.db.args: a kind takes no args"},
		{"dependencies:\n  up:\n    package: ./up\n    readiness: {tcp: true, http: /}\n", "dependencies.up.readiness: give one of"},
		{"dependencies:\n  up:\n    package: ./up\n    readiness: {http: healthz}\n", "dependencies.up.readiness.http: must start with /"},
		{"dependencies:\n  up:\n    package: ./up\n    readiness: {command: [/bin/sh, -c, x]}\n", "dependencies.up.readiness.command"},
		{"dependencies:\n  db: {kind: redis}\nrun:\n  env:\n    X: '{{dep.cache.port}}'\n", "line 5: run.env.X: {{dep.cache.port}} names no dependency"},
		{"dependencies:\n  db: {kind: redis}\nrun:\n  args: ['{{dep.db.host}}']\n", "run.args.0: {{dep.db.host}}"},
		{"dependencies:\n  up: {package: ./up}\nrun:\n  args: ['{{dep.up.url}}']\n", "only a kind (redis, postgres) has a url"},
		{"dependencies:\n  db: {kind: redis, bogus: 1}\n", "bogus"},
		{"dependencies:\n  up:\n    package: ./up\n    args: ['{{dep.cache.addr}}']\n", "line 4: dependencies.up.args.0: {{dep.cache.addr}} names no dependency"},
		{"dependencies:\n  up: {package: ./up}\nload:\n  targets:\n    - {method: GET, path: '/probe?target={{dep.upstream.addr}}'}\n", "line 5: load.targets.0.path: {{dep.upstream.addr}} names no dependency"},
		{"dependencies:\n  db: {kind: postgres, port: 70000}\n", "line 2: dependencies.db.port: must be a port, 1 to 65535"},
		{"run:\n  port: 5432\ndependencies:\n  db: {kind: postgres, port: 5432}\n", "line 4: dependencies.db.port: 5432 is run.port's too"},
		{"dependencies:\n  a: {kind: redis, port: 6379}\n  b: {kind: redis, port: 6379}\n", "dependencies.b.port: 6379 is dependencies.a.port's too"},
		{"run:\n  network: host\ndependencies:\n  db: {kind: redis, port: 6379}\n", "line 4: dependencies.db.port: a fixed port needs the sandbox's own network"},
		{"dependencies:\n  db:\n    kind: postgres\n    env: {POSTGRES_DB: \"gis; drop\"}\n", "line 4: dependencies.db.env.POSTGRES_DB: \"gis; drop\" must be a plain identifier"},
		{"dependencies:\n  up: {package: ./up}\nload:\n  targets:\n    - method: POST\n      path: /probe\n      body: '{\"target\": \"{{dep.upstrem.addr}}\"}'\n", "line 7: load.targets.0.body: {{dep.upstrem.addr}} names no dependency"},
		{"dependencies:\n  up:\n    package: ./up\n    env: {SELF: '{{dep.up.port}}'}\n", "line 3: dependencies.up: up names up, and they cannot all start first"},
		{"dependencies:\n  a:\n    package: ./a\n    args: ['{{dep.b.addr}}']\n  b:\n    package: ./b\n    readiness: {command: [nc, '{{dep.a.port}}']}\n",
			"line 3: dependencies.a: a names b, and they cannot all start first"},
	} {
		_, err := Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %q", c.yaml, err, c.want)
		}
	}
}

// A dependency that names another starts after it, whatever their names;
// the others start by name.
func TestDependenciesStartAfterThoseTheyName(t *testing.T) {
	cfg, err := Parse([]byte(`
dependencies:
  api:
    package: ./stub
    args: ["-db", "{{dep.store.url}}", "-listen", "127.0.0.1:{{port}}"]
  store: {kind: postgres}
  auth:
    package: ./auth
    env: {API: "http://{{dep.api.addr}}"}
  cache: {kind: redis}
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(cfg.DependencyNames(), ","); got != "cache,store,api,auth" {
		t.Fatalf("start order %s, want cache,store,api,auth", got)
	}
}
