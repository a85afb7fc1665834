// Package gpu measures this process's GPU memory with NVML, so the
// scheduler's budget counts what each model really holds on the GPU.
//
// NVML is optional: without an NVIDIA driver Open fails cleanly and the
// scheduler falls back to configured or RSS-measured memory. go-nvml kills
// the process if any NVML function is called after a failed Init, so this
// package calls nothing but Init until Init has succeeded.
package gpu

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// ErrUnavailable means no usable NVML (no driver, no GPU).
var ErrUnavailable = errors.New("NVML unavailable")

// NVML is an initialised NVML library.
type NVML struct {
	mu     sync.Mutex
	closed bool
}

// initNVML is swapped in tests to simulate a host with a GPU driver.
var initNVML = func() nvml.Return { return nvml.Init() }

// Open initialises NVML. It returns an error wrapping ErrUnavailable where
// there is no driver; nothing else of NVML is touched then.
func Open() (*NVML, error) {
	ret := safeInit()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("%w: %s", ErrUnavailable, describe(ret))
	}
	return &NVML{}, nil
}

// safeInit calls Init, turning a panic of the binding (a missing symbol on
// an odd driver) into a failure.
func safeInit() (ret nvml.Return) {
	defer func() {
		if r := recover(); r != nil {
			ret = nvml.ERROR_UNKNOWN
		}
	}()
	return initNVML()
}

func describe(ret nvml.Return) string {
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return "libnvidia-ml.so not found (no NVIDIA driver)"
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return "NVIDIA driver not loaded"
	case nvml.ERROR_NO_PERMISSION:
		return "no permission to use NVML"
	}
	return fmt.Sprintf("NVML error %d", int32(ret))
}

// ProcessMemory returns the GPU memory this process uses, summed over all
// devices.
func (n *NVML) ProcessMemory() (int64, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return 0, errors.New("NVML is closed")
	}
	count, ret := nvml.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return 0, fmt.Errorf("nvml device count: %s", nvml.ErrorString(ret))
	}
	pid := uint32(os.Getpid())
	var total int64
	for i := 0; i < count; i++ {
		dev, ret := nvml.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			return 0, fmt.Errorf("nvml device %d: %s", i, nvml.ErrorString(ret))
		}
		procs, ret := dev.GetComputeRunningProcesses()
		if ret != nvml.SUCCESS {
			return 0, fmt.Errorf("nvml processes of device %d: %s", i, nvml.ErrorString(ret))
		}
		for _, p := range procs {
			if p.Pid == pid {
				total += int64(p.UsedGpuMemory)
			}
		}
	}
	return total, nil
}

// Close shuts NVML down.
func (n *NVML) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	if ret := nvml.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvml shutdown: %s", nvml.ErrorString(ret))
	}
	return nil
}
