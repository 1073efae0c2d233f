package main

import (
	"bufio"
	"io"
	"strings"
	"testing"
	"time"
)

func TestRunRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"NoDir", []string{"--members", "1"}, "--dir is required"},
		{"NoMembers", []string{"--dir", t.TempDir(), "--members", "0"}, "--members 0: say 1 to 5"},
		{"TooMany", []string{"--dir", t.TempDir(), "--members", "6"}, "--members 6: say 1 to 5"},
		{"Unknown", []string{"--dir", t.TempDir(), "--peers", "2"}, "flag provided but not defined: -peers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			err := run(t.Context(), tc.args, strings.NewReader(""), &out)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("run(%q) = %v, want an error with %q", tc.args, err, tc.want)
			}
			if out.Len() != 0 {
				t.Errorf("wrote %q, want nothing", out.String())
			}
		})
	}
}

// TestRunStopsWhenStdinEnds starts one member, reads its endpoint, and
// checks that the end of standard input (the bot gone) stops it.
func TestRunStopsWhenStdinEnds(t *testing.T) {
	stdinR, stdinW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(t.Context(), []string{"--dir", t.TempDir(), "--fast"}, stdinR, outW)
		outW.Close()
	}()
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatalf("read endpoints: %v (run: %v)", err, <-done)
	}
	urls, ok := strings.CutPrefix(strings.TrimSpace(line), "endpoints ")
	if !ok || !strings.HasPrefix(urls, "http://127.0.0.1:") || strings.Contains(urls, ",") {
		t.Fatalf("first line %q, want one endpoint on 127.0.0.1", line)
	}
	stdinW.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("still running 20 s after its standard input ended")
	}
}
