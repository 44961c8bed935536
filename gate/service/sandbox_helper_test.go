package service

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/memgate/memgate/gate/sandbox"
)

// testServiceSandbox is a service sandbox for a test: an empty root in a
// directory the sandbox's user can walk to (a test's temp directory is
// private), and, when the test runs as root, the user of the given slot.
func testServiceSandbox(t *testing.T, slot int) *ServiceSandbox {
	t.Helper()
	dir, err := os.MkdirTemp("", "memgate-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o711)
	root := filepath.Join(dir, "root")
	os.Mkdir(root, 0o755)
	var id sandbox.Identity
	if os.Geteuid() == 0 {
		id = sandbox.IdentityFor(0x6d670000+slot, 0x6d670000+slot)
	}
	return &ServiceSandbox{Identity: id, Root: root}
}
