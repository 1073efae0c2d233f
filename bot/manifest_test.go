package bot_test

import (
	"bytes"
	"os"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestManifest checks the Slack app manifest at the repository root.
func TestManifest(t *testing.T) {
	raw, err := os.ReadFile("../manifest.yml")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		DisplayInformation struct {
			Name        string `yaml:"name"`
			Description string `yaml:"description"`
			Background  string `yaml:"background_color"`
		} `yaml:"display_information"`
		Features struct {
			BotUser struct {
				DisplayName  string `yaml:"display_name"`
				AlwaysOnline bool   `yaml:"always_online"`
			} `yaml:"bot_user"`
			SlashCommands []struct {
				Command      string `yaml:"command"`
				URL          string `yaml:"url"`
				Description  string `yaml:"description"`
				UsageHint    string `yaml:"usage_hint"`
				ShouldEscape bool   `yaml:"should_escape"`
			} `yaml:"slash_commands"`
		} `yaml:"features"`
		OAuthConfig struct {
			Scopes struct {
				Bot []string `yaml:"bot"`
			} `yaml:"scopes"`
		} `yaml:"oauth_config"`
		Settings struct {
			Interactivity struct {
				IsEnabled  bool   `yaml:"is_enabled"`
				RequestURL string `yaml:"request_url"`
			} `yaml:"interactivity"`
			SocketModeEnabled    bool `yaml:"socket_mode_enabled"`
			OrgDeployEnabled     bool `yaml:"org_deploy_enabled"`
			TokenRotationEnabled bool `yaml:"token_rotation_enabled"`
		} `yaml:"settings"`
	}
	// Strict: a misspelt key would be silently ignored by Slack.
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("manifest.yml: %v", err)
	}
	if m.DisplayInformation.Name != "rebootbot" || m.DisplayInformation.Description == "" || len(m.DisplayInformation.Description) > 140 {
		t.Errorf("display_information = %+v", m.DisplayInformation)
	}
	if m.Features.BotUser.DisplayName != "rebootbot" || !m.Features.BotUser.AlwaysOnline {
		t.Errorf("bot_user = %+v", m.Features.BotUser)
	}
	if len(m.Features.SlashCommands) != 1 {
		t.Fatalf("%d slash commands, want 1", len(m.Features.SlashCommands))
	}
	cmd := m.Features.SlashCommands[0]
	if cmd.Command != "/reboot" || cmd.URL != "https://YOUR-HOST/slack/commands" || !cmd.ShouldEscape || cmd.Description == "" {
		t.Errorf("slash command = %+v", cmd)
	}
	if want := "ins-xxxxxxxx [--hard|--soft-first] [--region R] reason | help | status R-1 | pending | audit …"; cmd.UsageHint != want {
		t.Errorf("usage_hint = %q, want %q", cmd.UsageHint, want)
	}
	if got, want := m.OAuthConfig.Scopes.Bot, []string{"commands", "chat:write", "usergroups:read"}; !slices.Equal(got, want) {
		t.Errorf("bot scopes = %v, want %v", got, want)
	}
	in := m.Settings.Interactivity
	if !in.IsEnabled || in.RequestURL != "https://YOUR-HOST/slack/interactions" {
		t.Errorf("interactivity = %+v", in)
	}
	if !m.Settings.SocketModeEnabled || m.Settings.OrgDeployEnabled || m.Settings.TokenRotationEnabled {
		t.Errorf("settings = %+v", m.Settings)
	}
}
