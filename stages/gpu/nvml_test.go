package gpu

import (
	"errors"
	"os"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// On a machine without an NVIDIA driver Open must fail cleanly, with an
// error that says why, and the process must live on.
func TestOpenWithoutGPUFailsCleanly(t *testing.T) {
	if _, err := os.Stat("/dev/nvidiactl"); err == nil {
		t.Skip("this machine has an NVIDIA driver")
	}
	n, err := Open()
	if err == nil {
		n.Close()
		t.Fatal("Open succeeded without a GPU driver")
	}
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("error %v should wrap ErrUnavailable", err)
	}
	// A second attempt is just as clean (the scheduler may retry).
	if _, err := Open(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("second Open: %v", err)
	}
}

func TestInitPanicIsContained(t *testing.T) {
	saved := initNVML
	defer func() { initNVML = saved }()
	initNVML = func() nvml.Return { panic("symbol missing") }
	if _, err := Open(); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("want ErrUnavailable after a panicking Init, got %v", err)
	}
}
