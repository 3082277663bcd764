package clientsdk

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DetectRuntime tells how a file would run: an ELF executable or a script
// with a #! line → RuntimeExe (the kernel runs a script through its #!
// interpreter, which must be on the nodes), a Dart AOT snapshot (an ELF
// shared object with Dart's snapshot symbols) → RuntimeAOT, a kernel file
// (.dill, or Dart's kernel magic) → RuntimeKernel. It returns an error
// naming the file when it is none of these.
func DetectRuntime(path string) (Runtime, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 4)
	if _, err := io.ReadFull(f, head); err != nil {
		return "", fmt.Errorf("%s is too short to be an executable, AOT snapshot or kernel file", path)
	}
	if strings.EqualFold(filepath.Ext(path), ".dill") || bytes.Equal(head, []byte{0x90, 0xab, 0xcd, 0xef}) {
		return RuntimeKernel, nil
	}
	if bytes.HasPrefix(head, []byte("#!")) {
		return scriptRuntime(f, path)
	}
	if !bytes.Equal(head, []byte("\x7fELF")) {
		return "", fmt.Errorf("%s is not an ELF executable, a script with a #! line, a Dart AOT snapshot or a kernel .dill; compile Dart with `dart compile exe`, or start a script with a line such as #!/bin/sh", path)
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		return "", fmt.Errorf("%s: broken ELF file: %w", path, err)
	}
	defer ef.Close()
	if isDartSnapshot(ef) {
		return RuntimeAOT, nil
	}
	if ef.Type == elf.ET_EXEC {
		return RuntimeExe, nil
	}
	if ef.Type == elf.ET_DYN {
		for _, p := range ef.Progs {
			if p.Type == elf.PT_INTERP {
				return RuntimeExe, nil // a position-independent executable
			}
		}
		if ef.Entry != 0 && ef.Section(".interp") == nil && ef.Section(".dynamic") == nil {
			return RuntimeExe, nil // static PIE
		}
		return "", fmt.Errorf("%s is a shared library, not an executable or a Dart AOT snapshot", path)
	}
	return "", fmt.Errorf("%s is an ELF file of type %s, not an executable", path, ef.Type)
}

// scriptRuntime checks a script's #! line: an absolute interpreter path,
// within the 256 bytes Linux reads.
func scriptRuntime(f *os.File, path string) (Runtime, error) {
	head := make([]byte, 256)
	n, _ := f.ReadAt(head, 0)
	line, _, found := bytes.Cut(head[:n], []byte("\n"))
	if !found && n == len(head) {
		return "", fmt.Errorf("%s: its #! line is longer than the 256 bytes Linux reads", path)
	}
	interp := strings.Fields(strings.TrimPrefix(string(line), "#!"))
	if len(interp) == 0 || !strings.HasPrefix(interp[0], "/") {
		return "", fmt.Errorf("%s: its #! line %q names no absolute interpreter path (e.g. #!/bin/sh or #!/usr/bin/env python3)", path, strings.TrimSpace(string(line)))
	}
	return RuntimeExe, nil
}

func isDartSnapshot(ef *elf.File) bool {
	syms, err := ef.DynamicSymbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return false
	}
	for _, s := range syms {
		if strings.HasPrefix(s.Name, "_kDart") && strings.Contains(s.Name, "Snapshot") { // _kDartSnapshotData, _kDartVmSnapshotData, …
			return true
		}
	}
	return false
}
