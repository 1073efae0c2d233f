//go:build e2e

package main

import (
	"strings"
	"sync"
	"testing"

	"rebootbot/bot"
	"rebootbot/bot/slackstub"
	"rebootbot/cloud/emulator"
)

// rollingRequest files `/reboot ids… flags harness reboot` and returns the
// request ID once the bot says its card is in the channel.
func rollingRequest(w *world, ids []string, flags string) string {
	w.t.Helper()
	d := w.command(requester, strings.Join(ids, " ")+" "+flags+" harness reboot")
	w.mustSend(d)
	id := requestIDPattern.FindString(w.waitReply(d, "the card is in the channel"))
	if id == "" {
		w.t.Fatal("no request ID in the answer")
	}
	return id
}

// pausing reports whether a card shows a rolling request waiting for its
// next wave.
func pausing(m slackstub.Message) bool { return strings.Contains(m.Blocks, "next wave") }

// TestCrashWaveKillPoints kills the bot at the moments a rolling request
// stores before they take effect: at a wave boundary, during the pause
// between waves, and between a Stop click and its answer. After the
// restart the request goes on at the right wave, or stays stopped: no
// instance is rebooted twice, none that should run is skipped, and none of
// a wave after a stop is touched.
func TestCrashWaveKillPoints(t *testing.T) {
	t.Parallel()
	points := []struct {
		name  string
		want  string // the outcome
		flags string
		// crash drives request id of instances ids to the kill point and
		// kills the bot there.
		crash func(t *testing.T, w *world, id string, ids []string)
		// rebooted says how many times instance i of ids must have been
		// rebooted in the end.
		rebooted func(i int) int
	}{
		{
			// Wave 1 finished and wave 2 started (both stored), and the bot
			// dies at its first look at wave 2, before its reboot call.
			name: "WaveBoundary", want: "Succeeded", flags: "--wave 1",
			crash: func(t *testing.T, w *world, id string, ids []string) {
				var mu sync.Mutex
				first := ""
				var once sync.Once
				w.onEmulator(func(c emulator.Call) {
					mu.Lock()
					defer mu.Unlock()
					switch {
					case c.Action == "RebootInstances" && c.ErrorCode == "" && first == "" && len(c.InstanceIDs) == 1:
						first = c.InstanceIDs[0]
					case c.Action == "DescribeInstances" && first != "" && len(c.InstanceIDs) == 1 && c.InstanceIDs[0] != first:
						once.Do(w.killNow)
					}
				})
				defer w.onEmulator(nil)
				approveUntilKilled(w, approver1, id)
				w.awaitDeath()
				if n := w.emu.RebootCalls(ids[0]) + w.emu.RebootCalls(ids[1]); n != 1 {
					t.Errorf("at the wave boundary %d reboots were accepted, want 1", n)
				}
			},
			rebooted: func(int) int { return 1 },
		},
		{
			// The pause's end is stored as an absolute time: the restarted
			// bot waits out what is left of it, then runs wave 2.
			name: "DuringPause", want: "Succeeded", flags: "--wave 1 --pause 3s",
			crash: func(t *testing.T, w *world, id string, ids []string) {
				approve(w, approver1, id)
				w.waitCard(id, "the pause after wave 1", pausing)
				w.kill()
				if n := w.emu.RebootCalls(ids[0]) + w.emu.RebootCalls(ids[1]); n != 1 {
					t.Errorf("during the pause %d reboots were accepted, want 1", n)
				}
			},
			rebooted: func(int) int { return 1 },
		},
		{
			// The Stop click is stored before it is answered: the bot dies
			// as Slack takes the answer, and the request stays stopped.
			name: "StopClickAnswer", want: "Stopped", flags: "--wave 1 --pause 1h",
			crash: func(t *testing.T, w *world, id string, ids []string) {
				approve(w, approver1, id)
				card := w.waitCard(id, "the pause after wave 1", pausing)
				var once sync.Once
				w.onSlack(func(c slackstub.Call) {
					if c.Method == "response_url" && strings.Contains(responseText(c), "You stopped") {
						once.Do(w.killNow)
					}
				})
				defer w.onSlack(nil)
				w.send(w.click(requester, bot.ActionStop, id, card.TS))
				w.awaitDeath()
			},
			rebooted: func(i int) int { return 1 - min(i, 1) },
		},
	}
	rounds := crashRounds(t)
	for _, kp := range points {
		t.Run(kp.name, func(t *testing.T) {
			t.Parallel()
			instances := emulator.Generate(2*rounds, int64(len(kp.name)))
			w := newWorld(t, worldConfig{Instances: instances})
			w.start()
			var ids []string
			for round := 0; round < rounds; round++ {
				mine := instanceIDs(instances[2*round : 2*round+2])
				id := rollingRequest(w, mine, kp.flags)
				ids = append(ids, id)
				kp.crash(t, w, id, mine)
				w.start()
				if got := w.waitSettled(id); got != kp.want {
					t.Errorf("round %d: %s ended %q, want %q", round+1, id, got, kp.want)
				}
			}
			rep := w.checkWorld(ids, checkOptions{RebootOnce: true})
			reqs, _ := w.mustRequests(ids)
			for _, id := range ids {
				r := reqs[id]
				if r.Plan == nil || len(r.Plan.Waves) != 2 {
					t.Fatalf("%s: plan %+v, want 2 waves", id, r.Plan)
				}
				for i, wave := range r.Plan.Waves {
					for _, in := range wave {
						if got, want := w.emu.RebootCalls(in), kp.rebooted(i); got != want {
							t.Errorf("%s: %s of wave %d received %d accepted reboot calls, want %d", id, in, i+1, got, want)
						}
					}
				}
			}
			logf(t, "wave kill point %s: %d SIGKILLs, %d requests %v, %d accepted reboots, %d audit events",
				kp.name, rounds, rep.Requests, rep.Outcomes, rep.Reboots, rep.Events)
		})
	}
}
