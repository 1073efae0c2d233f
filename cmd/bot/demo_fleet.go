package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"rebootbot/approval"
	"rebootbot/bot"
	"rebootbot/bot/slackstub"
	"rebootbot/cloud/emulator"
)

// demoFleetSize is the web fleet of the demo's fleet act, rolled in waves
// of demoWave.
const (
	demoFleetSize = 40
	demoWave      = 10
)

// demoFleetInstances is the web fleet: tagged role=web, spread over two
// zones.
func demoFleetInstances() []emulator.Instance {
	zones := []string{"ap-guangzhou-3", "ap-guangzhou-4"}
	out := make([]emulator.Instance, demoFleetSize)
	for i := range out {
		out[i] = emulator.Instance{ID: fmt.Sprintf("ins-fleet%03d", i), Name: fmt.Sprintf("web-%02d", i), Zone: zones[i%len(zones)],
			PrivateIPs: []string{fmt.Sprintf("10.0.3.%d", i+1)}, Tags: map[string]string{"role": "web"}}
	}
	return out
}

// demoFleet is the demo's fleet act: a request selects the web fleet by tag
// and rolls it in waves of 10, two seconds apart, with no failure budget; one instance of the
// second wave fails, so the budget stops the request after wave 2 and the
// last two waves are never rebooted.
func demoFleet(ctx context.Context, say func(string, ...any), d *driver, engine *approval.Engine, emu *emulator.Emulator) error {
	stub := d.stub
	text := fmt.Sprintf("tag:role=web --wave %d --pause 2s rolling kernel 5.15.0-91", demoWave)
	say("── <@%s> in #ops: /reboot %s", demoRequester, text)
	if _, err := d.command(ctx, say, demoRequester, text); err != nil {
		return err
	}
	const id = "R-2"
	var r *approval.Request
	var card slackstub.Message
	if !stub.WaitFor(10*time.Second, func() bool {
		var err error
		if r, err = engine.Get(ctx, id); err != nil || r.Card.TS == "" {
			return false
		}
		card, _ = stub.Card(r.Card.TS)
		return card.TS != ""
	}) {
		return errors.New("the fleet request's card was not posted")
	}
	if r.Plan == nil || len(r.Plan.Waves) < 3 {
		return fmt.Errorf("%s has no plan of waves", id)
	}
	failing := r.Plan.Waves[1][3]
	emu.FailNextReboot(failing)
	say("   rebootbot posts the card; its head and its plan:")
	say("%s\n", indent(cardHead(card), "   │ "))
	say("   (the emulator will fail the reboot of %s, in wave 2)", failing)
	say("── <@%s> clicks Approve on %s", demoApprover, id)
	if err := d.click(ctx, say, demoApprover, bot.ActionApprove, id, card.TS); err != nil {
		return err
	}
	var paused slackstub.Message
	if !stub.WaitFor(10*time.Second, func() bool {
		paused, _ = stub.Card(card.TS)
		return strings.Contains(paused.Blocks, "next wave")
	}) {
		return errors.New("the fleet request's card never showed the pause after wave 1")
	}
	say("   during the pause after wave 1 the card reads:")
	say("%s\n", indent(cardHead(paused), "   │ "))
	if !stub.WaitFor(20*time.Second, func() bool {
		m, _ := stub.Card(card.TS)
		thread := stub.Thread(card.TS)
		return strings.Contains(m.Text, "Stopped") && len(thread) > 0 && strings.HasPrefix(thread[len(thread)-1].Text, "*Stopped*")
	}) {
		return fmt.Errorf("the fleet request did not stop in time; thread so far: %d messages", len(stub.Thread(card.TS)))
	}
	say("   rebootbot in the card's thread, a message per wave:")
	for _, m := range stub.Thread(card.TS) {
		say("%s", indent(m.Text, "   │ "))
	}
	final, _ := stub.Card(card.TS)
	say("\n   the card now reads:")
	say("%s\n", indent(cardHead(final), "   │ "))
	rebooted := 0
	for _, in := range demoFleetInstances() {
		rebooted += emu.RebootCalls(in.ID)
	}
	say("reboot calls the emulator accepted for the %d web instances: %d (waves 3 and 4 were never started)", demoFleetSize, rebooted)
	return nil
}

// cardHead renders a card without its instance lines, which a fleet's
// card has many of.
func cardHead(m slackstub.Message) string {
	var keep []string
	for _, line := range strings.Split(cardText(m), "\n") {
		if !strings.HasPrefix(line, "• `ins-") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}
