package cloud

import (
	"errors"
	"strings"
	"testing"

	"rebootbot/approval"
	"rebootbot/cloud/emulator"
	"rebootbot/cloud/emulator/emulatortest"
)

func TestDefaultProviderChain(t *testing.T) {
	_, url := emulatortest.Start(t, emulator.Config{}, running(1)...)
	// The chain's first link reads the process environment.
	t.Setenv(EnvSecretID, emulatortest.SecretID)
	t.Setenv(EnvSecretKey, emulatortest.SecretKey)
	c := mustNew(t, Config{Endpoint: url, DescribeLimiter: NewLimiter(DescribeCallsPerSecond)})
	found, _, err := c.Describe(t.Context(), "", idsOf(running(1)))
	if err != nil || len(found) != 1 {
		t.Fatalf("Describe with the chain's credentials = %v, %v", found, err)
	}
}

func TestDefaultProviderChainFails(t *testing.T) {
	_, url := emulatortest.Start(t, emulator.Config{}, running(1)...)
	// Set but empty: the chain stops at its first link with an error,
	// without asking the metadata service.
	t.Setenv(EnvSecretID, "")
	t.Setenv(EnvSecretKey, "")
	c := mustNew(t, Config{Endpoint: url})
	res, err := c.Reboot(t.Context(), "", idsOf(running(1)), approval.Soft)
	var ce *approval.CloudError
	if !errors.As(err, &ce) || ce.Code != CodeCredentialError {
		t.Fatalf("Reboot error = %v, want %s", err, CodeCredentialError)
	}
	if approval.ErrorKind(err) != approval.Forbidden {
		t.Errorf("kind = %s, want forbidden", approval.ErrorKind(err))
	}
	if !strings.Contains(ce.Explanation, EnvSecretID) {
		t.Errorf("explanation %q does not say how to give credentials", ce.Explanation)
	}
	if len(res) != 1 || res[0].Err == nil || res[0].Err.Code != CodeCredentialError {
		t.Errorf("results = %+v, want the credential error", res)
	}
}

func TestRedact(t *testing.T) {
	c := mustNew(t, Config{SecretID: "AKID", SecretKey: "the-secret-key", SessionToken: "the-token"})
	got := c.redact("bad key the-secret-key and token the-token")
	if strings.Contains(got, "the-secret-key") || strings.Contains(got, "the-token") {
		t.Errorf("redact left a secret in %q", got)
	}
	if want := "bad key [redacted] and token [redacted]"; got != want {
		t.Errorf("redact = %q, want %q", got, want)
	}
}
