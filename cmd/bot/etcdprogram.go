package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// etcdProgramName is the program that runs the etcd cluster of `bot demo
// --replicas` and `bot bench --etcd` (cmd/bot-etcd). The bot does not carry
// etcd's server itself: its packages would cost every running bot several
// MiB of memory for something only the demo and the bench use.
const etcdProgramName = "bot-etcd"

// etcdReadyTimeout bounds the wait for bot-etcd's endpoints; the program
// gives its members 15 s to become ready.
const etcdReadyTimeout = 30 * time.Second

// startDemoEtcd starts an n-member etcd cluster on loopback with its data
// under dir, in a bot-etcd process, and returns its client URLs and a
// function that stops it. fast shortens the election ticks so that leases
// expire close to their TTL (for the demo's takeover); otherwise etcd's
// defaults hold, fsync included (for measuring).
func startDemoEtcd(dir string, n int, fast bool) ([]string, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("find the bot binary: %w", err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	prog, err := findEtcdProgram(context.Background(), exe, sourceModuleDir(), filepath.Join(cache, "rebootbot"))
	if err != nil {
		return nil, nil, err
	}
	return startEtcdProgram(prog, dir, n, fast)
}

// findEtcdProgram returns the path of bot-etcd: the one beside exe (the bot's
// binary) when there is one; otherwise one built with the go command from
// the source checkout in moduleDir (the one the bot was built from) into
// buildDir, where it is kept so that only the first run waits for the
// build. Without either it says how to get one.
func findEtcdProgram(ctx context.Context, exe, moduleDir, buildDir string) (string, error) {
	beside := filepath.Join(filepath.Dir(exe), etcdProgramName)
	if fi, err := os.Stat(beside); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return beside, nil
	}
	missing := func(why string) error {
		return fmt.Errorf("%s, the program that runs the etcd cluster, is not beside the bot (%s) and %s; "+
			"build it there from the source checkout: go build -o %s ./cmd/%s",
			etcdProgramName, beside, why, beside, etcdProgramName)
	}
	if moduleDir == "" {
		return "", missing("the bot's source checkout is not here to build it from")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", missing("the go command is not on PATH to build it")
	}
	out := filepath.Join(buildDir, etcdProgramName)
	if err := os.MkdirAll(buildDir, 0o755); err != nil {
		return "", fmt.Errorf("make a place to build %s: %w", etcdProgramName, err)
	}
	// go build relinks only when the sources changed, so this is quick
	// after the first time.
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", out, "./cmd/"+etcdProgramName)
	cmd.Dir = moduleDir
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s in %s: %v\n%s", etcdProgramName, moduleDir, err, bytes.TrimSpace(msg))
	}
	return out, nil
}

// sourceModuleDir returns the root of the source checkout this binary was
// built from, or "" when it is not on this machine (the binary was copied
// elsewhere or built with -trimpath).
func sourceModuleDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok || !filepath.IsAbs(file) {
		return ""
	}
	root := filepath.Dir(filepath.Dir(filepath.Dir(file))) // <root>/cmd/bot/this file
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.HasPrefix(mod, []byte("module rebootbot\n")) {
		return ""
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", etcdProgramName)); err != nil {
		return ""
	}
	return root
}

// startEtcdProgram runs prog (bot-etcd) for an n-member cluster under dir
// and returns the cluster's client URLs once it is ready, and a function
// that stops it. bot-etcd also stops when this process dies, as its
// standard input then ends.
func startEtcdProgram(prog, dir string, n int, fast bool) ([]string, func(), error) {
	args := []string{"--dir", dir, "--members", strconv.Itoa(n)}
	if fast {
		args = append(args, "--fast")
	}
	cmd := exec.Command(prog, args...)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start %s: %w", etcdProgramName, err)
	}
	exited := make(chan struct{})
	var once sync.Once
	stop := func() {
		once.Do(func() {
			stdin.Close()
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		})
	}
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(exited)
	}()
	fail := func(err error) ([]string, func(), error) {
		stop()
		if msg := strings.TrimSpace(errOut.String()); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return nil, nil, err
	}
	select {
	case line := <-lines:
		urls, ok := strings.CutPrefix(strings.TrimSpace(line), "endpoints ")
		if !ok || urls == "" {
			<-exited
			return fail(fmt.Errorf("%s did not start the cluster", etcdProgramName))
		}
		return strings.Split(urls, ","), stop, nil
	case <-time.After(etcdReadyTimeout):
		return fail(errors.New(etcdProgramName + " gave no endpoints within 30 s"))
	}
}
