//go:build !linux

package childproc

import (
	"os/exec"
	"syscall"
)

func setParentDeathSignal(*exec.Cmd, syscall.Signal) {}
