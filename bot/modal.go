package bot

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"rebootbot/approval"
)

// The request form's callback ID and block IDs; validation errors are keyed
// by block ID. Every input uses the action ID "value".
const (
	FormCallbackID  = "reboot_request"
	BlockInstances  = "instances"
	BlockSelector   = "selector"
	BlockStopType   = "stop_type"
	BlockRegion     = "region"
	BlockReason     = "reason"
	formValueAction = "value"
)

// formMeta travels in the form's private_metadata: the channel the command
// was typed in (where the card goes) and the command's response_url (for
// answering the requester after the form is closed).
type formMeta struct {
	Channel     string `json:"channel"`
	ResponseURL string `json:"response_url,omitempty"`
}

// RequestForm returns the modal opened by a bare /reboot in channel.
func RequestForm(p *approval.Policy, channel, responseURL string) slack.ModalViewRequest {
	meta, _ := json.Marshal(formMeta{Channel: channel, ResponseURL: responseURL})
	if len(meta) > 3000 { // private_metadata's limit; the response_url is optional
		meta, _ = json.Marshal(formMeta{Channel: channel})
	}

	instances := slack.NewPlainTextInputBlockElement(plain("ins-1a2b3c4d ins-5e6f7a8b"), formValueAction)
	instances.Multiline = true
	instances.MaxLength = 3000
	instancesBlock := slack.NewInputBlock(BlockInstances, plain("Instances"), plain("Instance IDs separated by spaces, commas or new lines."), instances)
	instancesBlock.Optional = true

	selector := slack.NewPlainTextInputBlockElement(plain("tag:role=web zone:ap-guangzhou-3"), formValueAction)
	selector.MaxLength = 3000
	selectorBlock := slack.NewInputBlock(BlockSelector, plain("Or select instances"),
		plain("tag:KEY=VALUE, name:PATTERN (a trailing * matches the start), ip:ADDRESS, zone:ZONE. Different kinds narrow, repeats widen; only RUNNING instances are selected."), selector)
	selectorBlock.Optional = true

	soft := slack.NewOptionBlockObject(string(approval.Soft), plain("SOFT: graceful shutdown"), nil)
	hard := slack.NewOptionBlockObject(string(approval.Hard), plain("HARD: power off at once"), nil)
	softFirst := slack.NewOptionBlockObject(string(approval.SoftFirst), plain("SOFT_FIRST: graceful, then power off"), nil)
	stop := slack.NewRadioButtonsBlockElement(formValueAction, soft, hard, softFirst)
	stop.InitialOption = soft

	var region slack.BlockElement
	if p != nil && len(p.Regions) > 0 {
		var opts []*slack.OptionBlockObject
		var initial *slack.OptionBlockObject
		for _, r := range p.Regions[:min(len(p.Regions), 100)] {
			o := slack.NewOptionBlockObject(r, plain(truncate(r, 75)), nil)
			opts = append(opts, o)
			if r == p.DefaultRegion {
				initial = o
			}
		}
		sel := slack.NewOptionsSelectBlockElement(slack.OptTypeStatic, plain("Region"), formValueAction, opts...)
		sel.InitialOption = initial
		region = sel
	} else {
		placeholder := "the default region"
		if p != nil && p.DefaultRegion != "" {
			placeholder = p.DefaultRegion + " (default)"
		}
		in := slack.NewPlainTextInputBlockElement(plain(truncate(placeholder, 150)), formValueAction)
		in.MaxLength = 40
		region = in
	}

	reason := slack.NewPlainTextInputBlockElement(plain("Why do these instances need a reboot?"), formValueAction)
	reason.Multiline = true
	reason.MaxLength = approval.MaxReasonLength

	regionBlock := slack.NewInputBlock(BlockRegion, plain("Region"), nil, region)
	regionBlock.Optional = true

	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		CallbackID:      FormCallbackID,
		Title:           plain("Reboot instances"),
		Submit:          plain("Request reboot"),
		Close:           plain("Cancel"),
		PrivateMetadata: string(meta),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			instancesBlock,
			selectorBlock,
			slack.NewInputBlock(BlockStopType, plain("Stop type"), nil, stop),
			regionBlock,
			slack.NewInputBlock(BlockReason, plain("Reason"), nil, reason),
		}},
	}
}

// ParseRequestForm reads a submitted request form. errs maps block IDs to what is
// wrong with them (shown in the form); when it is empty, cmd is the request.
func ParseRequestForm(v *slack.View) (cmd CreateCommand, channel, responseURL string, errs map[string]string) {
	errs = map[string]string{}
	var meta formMeta
	if err := json.Unmarshal([]byte(v.PrivateMetadata), &meta); err != nil || !validChannelID(meta.Channel) {
		errs[BlockInstances] = "This form lost track of its channel; close it and type /reboot again."
		return cmd, "", "", errs
	}
	value := func(block string) *slack.BlockAction {
		if v.State == nil {
			return nil
		}
		if a, ok := v.State.Values[block][formValueAction]; ok {
			return &a
		}
		return nil
	}

	cmd.StopType = approval.Soft
	var text string
	if a := value(BlockInstances); a != nil {
		text = a.Value
	}
	seen := map[string]bool{}
	for _, w := range strings.FieldsFunc(text, func(r rune) bool { return isSpace(r) || r == ',' || r == ';' }) {
		if !approval.ValidInstanceID(w) {
			errs[BlockInstances] = fmt.Sprintf("%q is not an instance ID: IDs are ins- followed by 8 lowercase letters or digits.", truncate(w, 40))
			break
		}
		if !seen[w] {
			seen[w] = true
			cmd.Instances = append(cmd.Instances, w)
		}
	}
	if a := value(BlockSelector); a != nil {
		for _, w := range strings.FieldsFunc(a.Value, isSpace) {
			ok, err := cmd.Selector.Add(w)
			var se *approval.SelectorError
			switch {
			case !ok:
				errs[BlockSelector] = fmt.Sprintf("%q is not a selector: use tag:KEY=VALUE, name:PATTERN, ip:ADDRESS or zone:ZONE.", truncate(w, 40))
			case errors.As(err, &se):
				errs[BlockSelector] = fmt.Sprintf("%q %s", truncate(se.Word, 40), strings.ReplaceAll(se.Problem, "`", ""))
			case err != nil:
				errs[BlockSelector] = approval.ErrorMessage(err)
			}
			if errs[BlockSelector] != "" {
				break
			}
		}
	}
	_, badIDs := errs[BlockInstances]
	_, badSelector := errs[BlockSelector]
	if !badIDs && !badSelector && len(cmd.Instances) == 0 && cmd.Selector.Empty() {
		errs[BlockInstances] = "Name at least one instance, for example ins-1a2b3c4d, or select some below."
	}

	if a := value(BlockStopType); a != nil && a.SelectedOption.Value != "" {
		st := approval.StopType(a.SelectedOption.Value)
		if !st.Valid() {
			errs[BlockStopType] = "Pick one of the stop types."
		} else {
			cmd.StopType = st
		}
	}

	if a := value(BlockRegion); a != nil {
		region := strings.TrimSpace(a.SelectedOption.Value)
		if region == "" {
			region = strings.TrimSpace(a.Value)
		}
		if region != "" && !approval.ValidRegion(region) {
			errs[BlockRegion] = "That is not a region name (for example ap-guangzhou)."
		}
		cmd.Region = region
	}

	if a := value(BlockReason); a != nil {
		cmd.Reason = strings.TrimSpace(a.Value)
	}
	switch n := utf8.RuneCountInString(cmd.Reason); {
	case n == 0:
		errs[BlockReason] = "A reason is required."
	case n > approval.MaxReasonLength:
		errs[BlockReason] = fmt.Sprintf("Keep the reason under %d characters.", approval.MaxReasonLength)
	}
	return cmd, meta.Channel, meta.ResponseURL, errs
}

// validChannelID reports whether id looks like a Slack conversation ID.
func validChannelID(id string) bool {
	if len(id) < 2 || len(id) > 32 || !strings.ContainsRune("CGD", rune(id[0])) {
		return false
	}
	for _, c := range id[1:] {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
