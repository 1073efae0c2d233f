package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEtcdProgramBesideTheBot(t *testing.T) {
	dir := t.TempDir()
	want := filepath.Join(dir, etcdProgramName)
	if err := os.WriteFile(want, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// No source checkout: the one beside the bot must be found without it.
	got, err := findEtcdProgram(t.Context(), filepath.Join(dir, "bot"), "", t.TempDir())
	if err != nil || got != want {
		t.Fatalf("findEtcdProgram = %q, %v; want %q", got, err, want)
	}
}

func TestEtcdProgramMissingSaysHowToGetIt(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "bot")
	beside := filepath.Join(dir, etcdProgramName)
	// A file that is not executable is not the program.
	if err := os.WriteFile(beside, []byte("not a program"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("NoSourceCheckout", func(t *testing.T) {
		_, err := findEtcdProgram(t.Context(), exe, "", t.TempDir())
		wantError(t, err, "is not beside the bot ("+beside+")", "source checkout is not here", "go build -o "+beside+" ./cmd/bot-etcd")
	})
	t.Run("NoGoCommand", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		_, err := findEtcdProgram(t.Context(), exe, sourceModuleDir(), t.TempDir())
		wantError(t, err, "the go command is not on PATH", "go build -o "+beside+" ./cmd/bot-etcd")
	})
}

func TestSourceModuleDirIsThisCheckout(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if got := sourceModuleDir(); got != root {
		t.Errorf("sourceModuleDir() = %q, want %q", got, root)
	}
}

func wantError(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q lacks %q", err, p)
		}
	}
}
